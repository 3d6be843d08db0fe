from attrprune.cli import run

raise SystemExit(run())
