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


def test_histories_cover_both_workflows_both_hold_shapes_and_continue_as_new() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        # The hold workflow's first shape (holds kept in memory), recorded by that code.
        "seller_holds_in_memory_continue_as_new",
        "seller_holds_in_memory_after_continue_as_new",
        # Its database shape.
        "seller_holds_database_continue_as_new",
        "seller_holds_database_after_continue_as_new",
        "dispute_won",
        "dispute_lost_at_deadline",
        # A standard payout recorded by the payout workflow of before instant payouts (no
        # PayoutMethod patch), and an instant payout by today's.
        "payout_paid_before_instant_payouts",
        "payout_instant_paid",
        # The wallet expiry workflow, before and after its continue-as-new.
        "wallet_expiries_continue_as_new",
        "wallet_expiries_after_continue_as_new",
        # A test clock's advance, before and after its continue-as-new, and a dispute lost when
        # its test clock passed the deadline (tests/test_clocks, RECORD_HISTORIES=1).
        "test_clock_advance_continue_as_new",
        "test_clock_advance_after_continue_as_new",
        "dispute_lost_at_test_clock_deadline",
    } <= names
    for shape in ("in_memory", "database"):
        path = HISTORIES[0].parent / f"seller_holds_{shape}_continue_as_new.json"
        events = json.loads(path.read_text())["events"]
        assert events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
        markers = [e for e in events if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"]
        assert bool(markers) == (shape == "database"), "the database shape's patch marker"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_with_the_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"
