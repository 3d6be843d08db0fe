import sys

from attrprune.forkserver import delegate

# A running fork server (attrprune.forkserver) runs the stage with its libraries already imported.
code = delegate(sys.argv[1:])
if code is None:
    from attrprune.cli import run

    code = run()
raise SystemExit(code)
