from attrprune.entry import console

raise SystemExit(console())
