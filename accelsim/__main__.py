"""``python -m accelsim``: the command-line interface."""

from accelsim.cli.main import main

raise SystemExit(main())
