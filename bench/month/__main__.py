"""``python -m bench.month``: see the package's docstring."""

import os
import sys

from bench.month.cli import main

code = main()
sys.stdout.flush()
# Skip interpreter finalisation: the Temporal runtime's threads may still hold the GIL state.
os._exit(code)
