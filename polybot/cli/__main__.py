"""``python -m polybot.cli …``: the same as the ``polybot`` console script."""

from polybot.cli.main import main

raise SystemExit(main())
