"""``python -m server``: the ``payouts`` command (how the launcher starts its children)."""

import sys

from server.cli import main

sys.exit(main())
