"""The API calls ledger_core; it must not import workflow or activity code (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys


def test_api_imports_no_workflow_or_activity_code() -> None:
    probe = (
        "import sys, api.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'workflows', 'activities'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
