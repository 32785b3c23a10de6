"""Determinism: replay the workflow histories kept in tests/workflows/histories with today's
workflow code. A change that would break running workflows (a new command where history has
another, a reordered activity, ...) fails here. Re-record with record_histories.py only for
intended, compatible changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.registry import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_cover_both_workflows_and_continue_as_new() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "seller_holds_continue_as_new",
        "seller_holds_after_continue_as_new",
        "dispute_won",
        "dispute_lost_at_deadline",
    } <= names
    events = json.loads((HISTORIES[0].parent / "seller_holds_continue_as_new.json").read_text())
    assert events["events"][-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_with_the_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"
