"""``python -m payouts``: the ``payouts`` command (how the launcher starts its children)."""

import sys

from payouts.cli import main

sys.exit(main())
