"""The command line's one entry point, behind both `python -m attrprune` and the `attrprune`
console script: a running fork server (`attrprune.forkserver`) runs the stage with its libraries
already imported; otherwise it runs here, behind the error boundary (`attrprune.cli.run`: one
line per failure a user can fix, exit code 1).

Run: ``attrprune <stage> ...`` or ``python -m attrprune <stage> ...`` (the same thing).
"""

from __future__ import annotations

import sys


def console(argv: list[str] | None = None) -> int:
    from attrprune.forkserver import delegate

    argv = sys.argv[1:] if argv is None else argv
    code = delegate(argv)
    if code is None:
        from attrprune.cli import run

        code = run(argv)
    return code
