"""The hold workflow across continue-as-new and across a worker that stops mid-way: each due
earning is posted exactly once (one ledger transaction per order, posted, with its entries
written once), and the seller's balances add up. Earnings are booked as the API books them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import Engine, func, select
from temporalio.testing import WorkflowEnvironment

from ledger_core.schema import ledger_entries, ledger_transactions
from marketplace import Marketplace
from temporal_calls import holds
from tests.helpers import eventually
from tests.temporal_env import running_worker
from tests.workflows.conftest import SkippingEnv, balances, book, book_now, create_seller, views


def earning_ledger_rows(
    engine: Engine, seller: str, orders: list[str]
) -> dict[str, tuple[int, str, int]]:
    """order id -> (ledger transactions, their status, entries) of the seller's earning."""
    t, e = ledger_transactions, ledger_entries
    with engine.begin() as conn:
        rows = conn.execute(
            select(
                t.c.external_id,
                func.count(func.distinct(t.c.id)),
                func.min(t.c.status),
                func.count(e.c.id),
            )
            .join(e, e.c.transaction_id == t.c.id)
            .where(t.c.external_id.in_([f"earning:{seller}/{o}" for o in orders]))
            .group_by(t.c.external_id)
        ).all()
    return {r[0].removeprefix(f"earning:{seller}/"): (r[1], r[2], r[3]) for r in rows}


async def test_continue_as_new_carries_nothing_and_loses_nothing(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    """Holds ending an hour apart: a turn each, so the workflow (history limit 40) continues as
    new several times; its input stays the same small thing, and every hold posts once."""
    env, seller = skipping_env, f"s-{uid}"
    create_seller(engine, marketplace, seller, hold_period=timedelta(days=1))
    orders = [f"o{i:02d}-{uid}" for i in range(24)]
    async with running_worker(env.client, engine, task_queue=task_queue):
        handle = await holds.start_seller_holds(
            env.client, seller, history_limit=40, task_queue=task_queue
        )
        first_run = handle.first_execution_run_id or (await handle.describe()).run_id
        for i, order in enumerate(orders):
            # 100 + i minor units each, fee 10: net 90 + i.
            await book_now(env, engine, marketplace, seller, order, 100 + i, 10)
            if i == 5:
                await holds.cancel_hold(env.client, seller, orders[0])
            if i == 10:
                await holds.release_hold(env.client, seller, orders[1])
            await env.sleep(timedelta(hours=1))
        nets = {o: 90 + i for i, o in enumerate(orders)}
        total = sum(nets.values()) - nets[orders[0]]
        await env.sleep(timedelta(days=1, minutes=1))
        await eventually(
            lambda: _check(views(balances(engine, marketplace, seller)) == (total, total, total)),
            timeout=60,
        )
        description = await handle.describe()
        assert description.run_id != first_run, "the workflow never continued as new"
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        # The continued run's input: the seller and its settings, no holds.
        assert len(started.input.payloads[0].data) < 300
    rows = earning_ledger_rows(engine, seller, orders)
    assert rows[orders[0]] == (1, "archived", 3)
    assert all(rows[o] == (1, "posted", 3) for o in orders[1:]), rows


async def test_a_worker_stopped_mid_way_posts_every_due_earning_exactly_once(
    temporal_env: WorkflowEnvironment,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    """Real time on the dev server: holds of a second, and the worker stops while posting."""
    client, seller = temporal_env.client, f"s-{uid}"
    create_seller(engine, marketplace, seller, hold_period=timedelta(seconds=1))
    orders = [f"o{i:02d}-{uid}" for i in range(30)]
    async with running_worker(client, engine, task_queue=task_queue):
        for order in orders:
            book(engine, marketplace, seller, order, 1_000)
        # Stop as soon as the postings have begun.
        await eventually(lambda: _check(balances(engine, marketplace, seller).posted > 0))
    stopped_at = balances(engine, marketplace, seller)
    assert stopped_at.pending == 30_000
    async with running_worker(client, engine, task_queue=task_queue):
        await eventually(
            lambda: _check(
                views(balances(engine, marketplace, seller)) == (30_000, 30_000, 30_000)
            ),
            timeout=60,
        )
    rows = earning_ledger_rows(engine, seller, orders)
    assert len(rows) == 30 and set(rows.values()) == {(1, "posted", 2)}


async def test_a_worker_stopped_between_booking_and_posting(
    temporal_env: WorkflowEnvironment,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    """No worker while the holds end: the next worker posts each of them, once."""
    client, seller = temporal_env.client, f"s-{uid}"
    create_seller(engine, marketplace, seller, hold_period=timedelta(seconds=2))
    orders = [f"o{i}-{uid}" for i in range(5)]
    async with running_worker(client, engine, task_queue=task_queue):
        for order in orders:
            book(engine, marketplace, seller, order, 2_000, 500)
        state = await eventually(lambda: _timer_set(client, seller))
        assert state is not None
    assert views(balances(engine, marketplace, seller)) == (7_500, 0, 0)
    await asyncio.sleep(3)
    assert views(balances(engine, marketplace, seller)) == (7_500, 0, 0)
    async with running_worker(client, engine, task_queue=task_queue):
        await eventually(
            lambda: _check(views(balances(engine, marketplace, seller)) == (7_500, 7_500, 7_500)),
            timeout=60,
        )
    rows = earning_ledger_rows(engine, seller, orders)
    assert set(rows.values()) == {(1, "posted", 3)} and len(rows) == 5


async def _timer_set(client: object, seller: str) -> object:
    from temporalio.client import Client

    assert isinstance(client, Client)
    state = await holds.get_holds_state(client, seller)
    assert state is not None and state.timer_at is not None
    return state


def _check(condition: bool) -> None:
    assert condition
