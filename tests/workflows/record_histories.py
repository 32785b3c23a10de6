"""Record the workflow histories that the replay tests (test_replay.py) replay.

Run once after an intended, compatible change to the workflows' behaviour, and commit the JSON
files:  TEST_DATABASE_URL=postgresql://... python -m tests.workflows.record_histories
(``--only wallets``: the wallet expiry workflow's histories alone).

Each scenario runs the real workflows and activities on the time-skipping server and exercises
every branch a running workflow may be in: updates with validators, timers, reserves,
continue-as-new, dispute outcomes. The histories of the hold workflow's first shape
(``seller_holds_in_memory_*``, which kept its holds in memory) were recorded by the code of that
time and are kept as they are: they cannot be recorded again. Neither can
``payout_paid_before_instant_payouts`` (a standard payout, paid, on the dev server with the
simulated bank, by the payout workflow as it was before instant payouts); ``payout_instant_paid``
was recorded the same way by the workflow with instant payouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts.disputes import dispute_workflow_id
from contracts.holds import seller_holds_workflow_id
from contracts.wallets import wallet_expiries_workflow_id
from marketplace import Marketplace, RollingReserve
from server.database import create_db_engine, migrate
from server.temporal_server import SEARCH_ATTRIBUTES
from temporal_calls import disputes as dispute_calls
from temporal_calls import holds as hold_calls
from temporal_calls.errors import WorkflowRequestError
from temporal_calls.wallets import start_wallet_expiries
from tests.temporal_env import new_task_queue, running_worker, start_time_skipping_server
from tests.workflows.conftest import book, create_seller

HISTORIES = Path(__file__).parent / "histories"


async def _save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print("recorded", name, len(history.events), "events")


async def record_wallet_expiries(
    env: WorkflowEnvironment, engine: Any, marketplace: Marketplace, queue: str
) -> None:
    """The wallet expiry workflow: started, woken by top-ups that expire and by a refund into
    expired money, expiring lots over days, then a continue-as-new."""
    client = env.client
    wallet = f"replay-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        marketplace.create_wallet(conn, wallet_id=wallet, owner="replay", name="W", currency="USD")
    handle = await start_wallet_expiries(client, wallet, history_limit=40, task_queue=queue)
    first_run = handle.result_run_id
    now = await env.get_current_time()
    with engine.begin() as conn:
        lots = [
            marketplace.top_up(
                conn,
                wallet,
                amount=100 * n,
                settled=True,
                expires_at=now + timedelta(hours=6 * n),
                now=now,
            )
            for n in range(1, 7)
        ]
        spent = marketplace.spend(conn, wallet, amount=250, description="replay", now=now)
    await asyncio.sleep(1.5)  # the dispatcher's wake, the first turn
    await env.sleep(timedelta(hours=13))
    with engine.begin() as conn:  # back into an expired lot: due at once
        marketplace.refund_spend(conn, wallet, spent.id, now=now)
    await asyncio.sleep(1.5)
    with engine.begin() as conn:
        marketplace.set_expiry(conn, wallet, lots[-1].id, None, now=now)
    await env.sleep(timedelta(days=2))
    with engine.begin() as conn:
        for n in range(1, 12):
            later = await env.get_current_time()
            marketplace.top_up(
                conn,
                wallet,
                amount=10,
                settled=True,
                expires_at=later + timedelta(hours=n),
                now=later,
            )
    await env.sleep(timedelta(hours=12))
    await asyncio.sleep(1)
    await _save(
        client.get_workflow_handle(handle.id, run_id=first_run),
        "wallet_expiries_continue_as_new",
    )
    await _save(
        client.get_workflow_handle(wallet_expiries_workflow_id(wallet)),
        "wallet_expiries_after_continue_as_new",
    )


async def main() -> None:
    url = os.environ["TEST_DATABASE_URL"]
    migrate(url)
    engine = create_db_engine(url, pool_size=5)
    marketplace = Marketplace()
    env: WorkflowEnvironment = await start_time_skipping_server()
    client: Client = env.client
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in SEARCH_ATTRIBUTES
            },
        )
    )
    uid = uuid.uuid4().hex[:8]
    queue = new_task_queue("record")
    if sys.argv[1:] == ["--only", "wallets"]:
        try:
            async with running_worker(client, engine, task_queue=queue):
                await record_wallet_expiries(env, engine, marketplace, queue)
        finally:
            await env.shutdown()
            engine.dispose()
        return
    seller = f"replay-{uid}"
    create_seller(
        engine,
        marketplace,
        seller,
        hold_period=timedelta(days=7),
        rolling_reserve=RollingReserve(1_000, timedelta(days=30)),
    )
    try:
        async with running_worker(client, engine, task_queue=queue):
            # Seller holds: bookings (database writes, the dispatcher wakes the workflow),
            # operator updates (and rejected ones), holds ending, reserves released, an earlier
            # hold waking the workflow, then a continue-as-new.
            handle = await hold_calls.start_seller_holds(
                client, seller, history_limit=60, task_queue=queue
            )
            first_run = handle.result_run_id

            async def book_order(order: str, amount: int, fee: int = 0) -> None:
                now = await env.get_current_time()
                book(engine, marketplace, seller, order, amount, fee, now=now)

            for i in range(4):
                await book_order(f"{uid}-o{i}", 1_000 + i, 100)
            await asyncio.sleep(1.5)  # the dispatcher's wake, the first turn
            await hold_calls.release_hold(client, seller, f"{uid}-o1")
            with engine.begin() as conn:
                o2 = marketplace.get_earning(conn, seller, f"{uid}-o2")
            await hold_calls.extend_hold(
                client, seller, f"{uid}-o2", o2.hold_until + timedelta(days=1)
            )
            await hold_calls.cancel_hold(client, seller, f"{uid}-o3")
            for bad in (
                hold_calls.cancel_hold(client, seller, f"{uid}-o3"),
                hold_calls.release_hold(client, seller, "x"),
            ):
                with contextlib.suppress(WorkflowRequestError):
                    await bad
            with engine.begin() as conn:
                marketplace.update_seller(conn, seller, hold_period=timedelta(days=1))
            await book_order(f"{uid}-sooner", 700)
            await asyncio.sleep(1.5)
            await env.sleep(timedelta(days=9))
            await env.sleep(timedelta(days=32))
            for i in range(4, 14):
                await book_order(f"{uid}-o{i}", 500)
                await env.sleep(timedelta(days=2))
            await asyncio.sleep(1)
            await _save(
                client.get_workflow_handle(handle.id, run_id=first_run),
                "seller_holds_database_continue_as_new",
            )
            await _save(
                client.get_workflow_handle(seller_holds_workflow_id(seller)),
                "seller_holds_database_after_continue_as_new",
            )

            # Disputes: won by update, lost at the deadline.
            now = await env.get_current_time()
            await dispute_calls.open_dispute(
                client,
                f"{uid}-won",
                seller,
                f"{uid}-o1",
                100,
                now + timedelta(days=5),
                task_queue=queue,
            )
            await dispute_calls.resolve_dispute(client, f"{uid}-won", "won")
            await dispute_calls.open_dispute(
                client,
                f"{uid}-late",
                seller,
                f"{uid}-o1",
                200,
                now + timedelta(days=5),
                task_queue=queue,
            )
            await env.sleep(timedelta(days=6))
            await asyncio.sleep(1)
            await _save(
                client.get_workflow_handle(dispute_workflow_id(f"{uid}-won")), "dispute_won"
            )
            await _save(
                client.get_workflow_handle(dispute_workflow_id(f"{uid}-late")),
                "dispute_lost_at_deadline",
            )
            await record_wallet_expiries(env, engine, marketplace, queue)
    finally:
        await env.shutdown()
        engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
