"""A hold workflow that began in the first shape (holds kept in memory, earnings booked through
its update) moves over to the database shape while it runs: a worker of that time starts it and
books two earnings through it; the worker is replaced by today's; the dispatcher's sweep wakes
the workflow (version 0006 asked for a wake for every seller with open holds, and so does every
booking), which continues as new in the database shape and posts both holds, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from contracts.holds import (
    AddEarningRequest,
    EarningResult,
    SellerHoldInput,
    seller_holds_workflow_id,
)
from marketplace import Marketplace
from tests.helpers import eventually
from tests.temporal_env import running_worker
from tests.workflows.conftest import balances, create_seller, views
from tests.workflows.first_shape import FirstShapeHoldWorkflow
from tests.workflows.test_hold_durability import earning_ledger_rows
from workflows.registry import WORKFLOWS
from workflows.seller_holds import HOLDS_IN_DATABASE, SellerHoldWorkflow


async def add_earning(client: Client, seller: str, order: str, queue: str) -> EarningResult:
    result: EarningResult = await client.execute_update_with_start_workflow(
        FirstShapeHoldWorkflow.add_earning,
        AddEarningRequest(order_id=order, amount=1_000, fee=100),
        start_workflow_operation=WithStartWorkflowOperation(
            FirstShapeHoldWorkflow.run,
            SellerHoldInput(seller_id=seller),
            id=seller_holds_workflow_id(seller),
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        ),
        id=f"earning:{order}",
    )
    return result


async def test_a_running_first_shape_workflow_moves_to_the_database_shape(
    temporal_env: WorkflowEnvironment,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    client, seller = temporal_env.client, f"moving-{uid}"
    orders = [f"o1-{uid}", f"o2-{uid}"]
    create_seller(engine, marketplace, seller, hold_period=timedelta(seconds=8))
    old_shape = [FirstShapeHoldWorkflow, *(w for w in WORKFLOWS if w is not SellerHoldWorkflow)]
    async with running_worker(
        client, engine, task_queue=task_queue, workflows=old_shape, wake_holds=False
    ):
        for order in orders:
            booked = await add_earning(client, seller, order, task_queue)
            assert booked.status == "on_hold"
        handle = client.get_workflow_handle(seller_holds_workflow_id(seller))
        first_run = (await handle.describe()).run_id
        assert len(await handle.query("holds")) == 2  # kept in the workflow's memory
    assert views(balances(engine, marketplace, seller)) == (1_800, 0, 0)

    async with running_worker(client, engine, task_queue=task_queue, sweep_holds=seller):

        async def moved() -> None:
            assert (await handle.describe()).run_id != first_run

        # Woken by the sweep well before the holds end (8 s): the database shape posts them.
        await eventually(moved, timeout=20)
        assert views(balances(engine, marketplace, seller)) == (1_800, 0, 0)

        def posted() -> None:
            assert views(balances(engine, marketplace, seller)) == (1_800, 1_800, 1_800)

        await eventually(posted, timeout=60)
        old = await client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
        assert old.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
        new = await handle.fetch_history()
        markers: list[Any] = [
            e.marker_recorded_event_attributes
            for e in new.events
            if e.HasField("marker_recorded_event_attributes")
        ]
        assert any(HOLDS_IN_DATABASE in str(m.details) for m in markers)
        await handle.terminate("test over")
    rows = earning_ledger_rows(engine, seller, orders)
    assert set(rows.values()) == {(1, "posted", 3)} and len(rows) == 2
