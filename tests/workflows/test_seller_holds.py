"""The seller hold workflow on the time-skipping test server, with the real activities against the
real database: holds of days end in milliseconds, and the seller's balances are checked at each
step through ``marketplace.seller_balances``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType

from marketplace import EarningStatus, Marketplace, RollingReserve
from tests.temporal_env import running_worker
from tests.workflows.conftest import (
    SkippingEnv,
    balances,
    create_seller,
    eventually,
    ledger_transaction_count,
    views,
)
from workflows import client as holds
from workflows.client import WorkflowRequestError
from workflows.types import seller_holds_workflow_id


async def test_a_seven_day_hold_posts_after_seven_days_not_before(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, seller, order = skipping_env, f"s-{uid}", f"o-{uid}"
    create_seller(engine, marketplace, seller, hold_period=timedelta(days=7))
    async with running_worker(env.client, engine, task_queue=task_queue):
        earning = await holds.add_earning(
            env.client, seller, order, 10_000, 1_000, {"sku": "lamp"}, task_queue=task_queue
        )
        assert earning.status == "on_hold" and earning.net == 9_000
        assert earning.metadata == {"sku": "lamp"}
        # Step 1: pending only.
        assert views(balances(engine, marketplace, seller)) == (9_000, 0, 0)
        assert balances(engine, marketplace, seller).on_hold == 9_000
        [hold] = await holds.get_holds(env.client, seller)
        assert (hold.order_id, hold.status, hold.hold_until) == (
            order,
            "on_hold",
            earning.hold_until,
        )

        await env.sleep(timedelta(days=6, hours=23))
        await asyncio.sleep(0.5)  # time for a (wrong) early posting to show
        assert views(balances(engine, marketplace, seller)) == (9_000, 0, 0)

        await env.sleep(timedelta(hours=1, minutes=1))

        def posted() -> None:
            # Steps 2 and 3: posted, and available since nothing holds it back.
            assert views(balances(engine, marketplace, seller)) == (9_000, 9_000, 9_000)

        await eventually(posted)
        assert balances(engine, marketplace, seller).on_hold == 0
        assert await holds.get_holds(env.client, seller) == []
    assert ledger_transaction_count(engine, f"earning:{order}") == 1


async def test_each_seller_has_its_own_hold_period_and_changes_apply_to_new_earnings(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, fast, slow = skipping_env, f"fast-{uid}", f"slow-{uid}"
    create_seller(engine, marketplace, fast, hold_period=timedelta(days=1))
    create_seller(engine, marketplace, slow, hold_period=timedelta(days=3))
    async with running_worker(env.client, engine, task_queue=task_queue):
        a = await holds.add_earning(env.client, fast, f"a-{uid}", 500, task_queue=task_queue)
        b = await holds.add_earning(env.client, slow, f"b-{uid}", 700, task_queue=task_queue)
        assert b.hold_until - a.hold_until > timedelta(days=1, hours=23)
        # PATCH hold_period: the next earning of the slow seller holds for 1 hour only.
        with engine.begin() as conn:
            marketplace.update_seller(conn, slow, hold_period=timedelta(hours=1))
        c = await holds.add_earning(env.client, slow, f"c-{uid}", 300, task_queue=task_queue)
        assert c.hold_until < a.hold_until

        await env.sleep(timedelta(hours=2))
        await eventually(
            lambda: _assert(views(balances(engine, marketplace, slow)) == (1_000, 300, 300))
        )
        assert views(balances(engine, marketplace, fast)) == (500, 0, 0)

        await env.sleep(timedelta(days=1))
        await eventually(
            lambda: _assert(views(balances(engine, marketplace, fast)) == (500, 500, 500))
        )
        assert views(balances(engine, marketplace, slow)) == (1_000, 300, 300)

        await env.sleep(timedelta(days=2))
        await eventually(
            lambda: _assert(views(balances(engine, marketplace, slow)) == (1_000, 1_000, 1_000))
        )


async def test_operators_release_extend_and_cancel_holds_and_bad_requests_are_rejected(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, seller = skipping_env, f"s-{uid}"
    create_seller(engine, marketplace, seller, hold_period=timedelta(days=7))
    release, extend, cancel = f"release-{uid}", f"extend-{uid}", f"cancel-{uid}"
    async with running_worker(env.client, engine, task_queue=task_queue):
        for order, amount in ((release, 1_000), (extend, 2_000), (cancel, 4_000)):
            await holds.add_earning(env.client, seller, order, amount, task_queue=task_queue)
        assert views(balances(engine, marketplace, seller)) == (7_000, 0, 0)

        released = await holds.release_hold(env.client, seller, release)
        assert released.status == "posted"
        assert views(balances(engine, marketplace, seller)) == (7_000, 1_000, 1_000)

        [current] = [h for h in await holds.get_holds(env.client, seller) if h.order_id == extend]
        new_end = current.hold_until + timedelta(days=3)
        extended = await holds.extend_hold(env.client, seller, extend, new_end)
        assert extended.hold_until == new_end and extended.status == "on_hold"

        cancelled = await holds.cancel_hold(env.client, seller, cancel)
        assert cancelled.status == "cancelled"
        # The cancelled earning counts nowhere: it was refunded during its hold.
        assert views(balances(engine, marketplace, seller)) == (3_000, 1_000, 1_000)
        assert [h.order_id for h in await holds.get_holds(env.client, seller)] == [extend]

        rejected = [
            (holds.release_hold(env.client, seller, f"unknown-{uid}"), "hold_not_found"),
            (holds.release_hold(env.client, seller, release), "invalid_hold_state"),
            (holds.cancel_hold(env.client, seller, cancel), "invalid_hold_state"),
            (holds.cancel_hold(env.client, seller, release), "invalid_hold_state"),
            (holds.extend_hold(env.client, seller, extend, new_end), "validation_failed"),
            (
                holds.extend_hold(env.client, seller, extend, new_end - timedelta(days=1)),
                "validation_failed",
            ),
            (holds.extend_hold(env.client, seller, cancel, new_end), "invalid_hold_state"),
            (
                holds.add_earning(env.client, seller, f"x-{uid}", 100, 101, task_queue=task_queue),
                "validation_failed",
            ),
            (
                holds.add_earning(env.client, seller, f"x-{uid}", 0, task_queue=task_queue),
                "validation_failed",
            ),
            (holds.release_hold(env.client, f"nobody-{uid}", release), "hold_not_found"),
        ]
        for request, code in rejected:
            with pytest.raises(WorkflowRequestError) as error:
                await request
            assert error.value.code == code, error.value.message
        assert ledger_transaction_count(engine, f"earning:x-{uid}") == 0

        # The validators rejected them: none entered the workflow's history.
        history = await env.client.get_workflow_handle(
            seller_holds_workflow_id(seller)
        ).fetch_history()
        accepted = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert len(accepted) == 6  # 3 add_earning, release, extend, cancel

        # The extended hold ends 10 days after booking, not 7.
        await env.sleep(timedelta(days=8))
        await asyncio.sleep(0.5)
        assert views(balances(engine, marketplace, seller)) == (3_000, 1_000, 1_000)
        await env.sleep(timedelta(days=2, minutes=1))
        await eventually(
            lambda: _assert(views(balances(engine, marketplace, seller)) == (3_000, 3_000, 3_000))
        )
    with engine.begin() as conn:
        assert marketplace.get_earning(conn, cancel).status is EarningStatus.CANCELLED
        assert marketplace.get_earning(conn, extend).status is EarningStatus.POSTED


async def test_rolling_reserve_is_released_after_its_period(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, seller, order = skipping_env, f"s-{uid}", f"o-{uid}"
    create_seller(
        engine,
        marketplace,
        seller,
        hold_period=timedelta(days=2),
        rolling_reserve=RollingReserve(percent_bp=1_000, period=timedelta(days=30)),
    )
    async with running_worker(env.client, engine, task_queue=task_queue):
        earning = await holds.add_earning(
            env.client, seller, order, 20_000, 2_000, task_queue=task_queue
        )
        assert earning.reserve_amount == 1_800
        await env.sleep(timedelta(days=2, minutes=1))

        def reserved() -> None:
            b = balances(engine, marketplace, seller)
            # Posted, but 10% of net held back: not available.
            assert (b.posted, b.available, b.in_reserve) == (18_000, 16_200, 1_800)

        await eventually(reserved)
        [hold] = await holds.get_holds(env.client, seller)
        assert hold.status == "posted" and hold.reserve_amount == 1_800
        assert hold.reserve_release_at is not None

        await env.sleep(timedelta(days=29))
        await asyncio.sleep(0.5)
        assert balances(engine, marketplace, seller).available == 16_200
        await env.sleep(timedelta(days=1, minutes=1))

        def released() -> None:
            b = balances(engine, marketplace, seller)
            assert (b.pending, b.posted, b.available, b.in_reserve) == (18_000, 18_000, 18_000, 0)

        await eventually(released)
        assert await holds.get_holds(env.client, seller) == []
    assert ledger_transaction_count(engine, f"reserve:{order}") == 1


async def test_duplicate_add_earning_books_once(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, seller, order = skipping_env, f"s-{uid}", f"o-{uid}"
    create_seller(engine, marketplace, seller)
    async with running_worker(env.client, engine, task_queue=task_queue):
        results = await asyncio.gather(
            *(
                holds.add_earning(env.client, seller, order, 800, 80, task_queue=task_queue)
                for _ in range(5)
            )
        )
        assert len({(r.ledger_transaction_id, r.hold_until) for r in results}) == 1
        again = await holds.add_earning(env.client, seller, order, 800, 80, task_queue=task_queue)
        assert again.ledger_transaction_id == results[0].ledger_transaction_id
        with pytest.raises(WorkflowRequestError) as conflict:
            await holds.add_earning(env.client, seller, order, 900, 80, task_queue=task_queue)
        assert conflict.value.code == "earning_conflict"
        assert len(await holds.get_holds(env.client, seller)) == 1
        assert views(balances(engine, marketplace, seller)) == (720, 0, 0)

        # After the hold ends and the earning posts, a late duplicate books nothing new either.
        await env.sleep(timedelta(days=7, minutes=1))
        await eventually(
            lambda: _assert(views(balances(engine, marketplace, seller)) == (720, 720, 720))
        )
        late = await holds.add_earning(env.client, seller, order, 800, 80, task_queue=task_queue)
        # Temporal answers the repeated update id with the first answer: the earning as booked.
        assert late.ledger_transaction_id == results[0].ledger_transaction_id
        assert await holds.get_holds(env.client, seller) == []
    assert ledger_transaction_count(engine, f"earning:{order}") == 1


async def test_an_unknown_seller_is_reported(
    skipping_env: SkippingEnv, engine: Engine, uid: str, task_queue: str
) -> None:
    env = skipping_env
    async with running_worker(env.client, engine, task_queue=task_queue):
        with pytest.raises(WorkflowRequestError) as missing:
            await holds.add_earning(
                env.client, f"nobody-{uid}", f"o-{uid}", 100, task_queue=task_queue
            )
    assert missing.value.code == "seller_not_found"


def _assert(condition: bool) -> None:
    assert condition
