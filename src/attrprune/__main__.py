from attrprune.cli import main

raise SystemExit(main())
