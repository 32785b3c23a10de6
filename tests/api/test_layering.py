"""The API reaches workflows only through ``temporal_calls`` (start, signal, update, query):
it never loads activity implementations (database code that only the worker runs). DESIGN.md."""

from __future__ import annotations

import json
import subprocess
import sys

ACTIVITY_IMPLEMENTATIONS = {
    "activities.database",
    "activities.disputes",
    "activities.registry",
    "activities.sellers",
}


def test_api_loads_no_activity_implementation() -> None:
    probe = (
        "import json, sys, api.app; "
        "print(json.dumps([m for m in sys.modules "
        "if m.startswith(('activities', 'workflows', 'temporal_calls'))]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "temporal_calls.holds" in loaded  # how the API drives workflows
    assert not loaded & ACTIVITY_IMPLEMENTATIONS, sorted(loaded)
