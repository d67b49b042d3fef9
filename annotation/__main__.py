"""``python -m annotation``: see ``annotation.cli``."""

from annotation.cli import main

raise SystemExit(main())
