"""The advance workflow's state is a counter: with a short history limit it continues as new
between steps and the advance still reaches its target, every hold posted in order."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from contracts.test_clocks import (
    TEST_CLOCK_ADVANCE_WORKFLOW,
    TestClockAdvanceInput,
    TestClockAdvanceState,
    clock_advance_workflow_id,
)
from marketplace import Marketplace
from marketplace.test_clocks import TestClocks
from tests.e2e.conftest import Stack
from tests.test_clocks.conftest import START, at, record_history

HOLDS = 6


async def test_an_advance_continues_as_new_and_reaches_its_target(
    stack: Stack, temporal_env: WorkflowEnvironment, engine: Engine, uid: str
) -> None:
    market, clocks = Marketplace(), TestClocks()
    clock_id, seller, start = f"clock-{uid}", f"many-{uid}", at(START)
    with engine.begin() as conn:
        clocks.create_clock(conn, clock_id=clock_id, name="C", frozen_time=start)
        market.create_seller(
            conn, seller_id=seller, name="S", currency="USD", test_clock_id=clock_id, livemode=False
        )
        for n in range(HOLDS):
            market.book_earning(conn, seller_id=seller, order_id=f"o-{n}", amount=100)
    with engine.begin() as conn:
        for n in range(HOLDS):  # each hold ends at a moment of its own
            market.extend_hold(conn, seller, f"o-{n}", start + timedelta(days=7, hours=n + 1))
        clock, _ = clocks.request_advance(conn, clock_id, start + timedelta(days=8))
    handle = await temporal_env.client.start_workflow(
        TEST_CLOCK_ADVANCE_WORKFLOW,
        TestClockAdvanceInput(clock_id=clock_id, advance=clock.advance_count, history_limit=60),
        id=clock_advance_workflow_id(clock_id, clock.advance_count),
        task_queue=stack.task_queue,
        result_type=TestClockAdvanceState,
    )
    state = await handle.result()
    assert state.outcome == "ready" and state.steps > HOLDS
    last = temporal_env.client.get_workflow_handle(handle.id)
    described = await last.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert described.run_id != handle.first_execution_run_id  # it continued as new
    first = temporal_env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    await record_history(first, "test_clock_advance_continue_as_new")
    await record_history(last, "test_clock_advance_after_continue_as_new")
    with engine.connect() as conn:
        assert clocks.get_clock(conn, clock_id).frozen_time == start + timedelta(days=8)
        posted = [market.get_earning(conn, seller, f"o-{n}").posted_at for n in range(HOLDS)]
    assert posted == [start + timedelta(days=7, hours=n + 1) for n in range(HOLDS)]
