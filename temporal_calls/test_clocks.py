"""Driving a test clock's advance workflow: start it (idempotent by the advance's number).

The API records the advance in PostgreSQL (``marketplace.test_clocks``) and starts the workflow;
the workflow reads its target from there, so a start that joins a running advance of the same
number changes nothing.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from contracts.common import TASK_QUEUE
from contracts.test_clocks import (
    TEST_CLOCK_ADVANCE_WORKFLOW,
    TestClockAdvanceInput,
    clock_advance_workflow_id,
)


async def start_test_clock_advance(
    client: Client, clock_id: str, advance: int, *, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Start the clock's advance number ``advance`` if it is not running (a repeat of the
    request joins it)."""
    return await client.start_workflow(
        TEST_CLOCK_ADVANCE_WORKFLOW,
        TestClockAdvanceInput(clock_id=clock_id, advance=advance),
        id=clock_advance_workflow_id(clock_id, advance),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        memo={"test_clock_id": clock_id},
        static_summary=f"Advance {advance} of test clock {clock_id}",
    )
