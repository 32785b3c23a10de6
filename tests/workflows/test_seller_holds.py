"""The seller hold workflow on the time-skipping test server, with the real activities and the
worker's dispatcher against the real database: earnings are booked as the API books them (a
database write), holds of days end in milliseconds, and the seller's balances are checked at each
step through ``marketplace.seller_balances``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from temporalio.api.enums.v1 import EventType

from contracts.holds import seller_holds_workflow_id
from marketplace import EarningStatus, Marketplace, RollingReserve
from temporal_calls import holds
from temporal_calls.errors import WorkflowRequestError
from tests.helpers import eventually, ledger_transaction_count
from tests.temporal_env import SkippingEnv, running_worker
from tests.workflows.conftest import balances, book_now, create_seller, views


def open_holds(engine: Engine, marketplace: Marketplace, seller: str) -> list[tuple[str, str]]:
    with engine.begin() as conn:
        return [(h.order_id, h.kind) for h in marketplace.list_holds(conn, seller).items]


async def history_events(env: SkippingEnv, seller: str) -> list[Any]:
    history = await env.client.get_workflow_handle(seller_holds_workflow_id(seller)).fetch_history()
    return list(history.events)


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
        earning = await book_now(env, engine, marketplace, seller, order, 10_000, 1_000)
        assert earning.status is EarningStatus.ON_HOLD and earning.net == 9_000
        # Step 1: pending only.
        assert views(balances(engine, marketplace, seller)) == (9_000, 0, 0)
        assert balances(engine, marketplace, seller).on_hold == 9_000
        assert open_holds(engine, marketplace, seller) == [(order, "earning")]

        # The booking's notification woke the workflow, which now sleeps until the hold's end.
        async def sleeping_until_the_end() -> None:
            state = await holds.get_holds_state(env.client, seller)
            assert state is not None and state.timer_at == earning.hold_until
            assert state.summary.on_hold_count == 1

        await eventually(sleeping_until_the_end)

        await env.sleep(timedelta(days=6, hours=23))
        await asyncio.sleep(0.5)  # time for a (wrong) early posting to show
        assert views(balances(engine, marketplace, seller)) == (9_000, 0, 0)

        await env.sleep(timedelta(hours=1, minutes=1))

        def posted() -> None:
            # Steps 2 and 3: posted, and available since nothing holds it back.
            assert views(balances(engine, marketplace, seller)) == (9_000, 9_000, 9_000)

        await eventually(posted)
        assert balances(engine, marketplace, seller).on_hold == 0
        assert open_holds(engine, marketplace, seller) == []
    assert ledger_transaction_count(engine, f"earning:{seller}/{order}") == 1


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
        a = await book_now(env, engine, marketplace, fast, f"a-{uid}", 500)
        b = await book_now(env, engine, marketplace, slow, f"b-{uid}", 700)
        assert b.hold_until - a.hold_until > timedelta(days=1, hours=23)
        # PATCH hold_period: the next earning of the slow seller holds for 1 hour only, which
        # wakes its workflow (asleep until the 3-day hold's end) to look earlier.
        with engine.begin() as conn:
            marketplace.update_seller(conn, slow, hold_period=timedelta(hours=1))

        async def slow_sleeps_until(end: Any) -> None:
            state = await holds.get_holds_state(env.client, slow)
            assert state is not None and state.timer_at == end

        await eventually(lambda: slow_sleeps_until(b.hold_until))
        c = await book_now(env, engine, marketplace, slow, f"c-{uid}", 300)
        assert c.hold_until < a.hold_until
        await eventually(lambda: slow_sleeps_until(c.hold_until))

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
        booked = {}
        for order, amount in ((release, 1_000), (extend, 2_000), (cancel, 4_000)):
            booked[order] = await book_now(env, engine, marketplace, seller, order, amount)
        assert views(balances(engine, marketplace, seller)) == (7_000, 0, 0)
        await eventually(lambda: _running(env, seller))

        released = await holds.release_hold(env.client, seller, release)
        assert released.status == "posted"
        assert views(balances(engine, marketplace, seller)) == (7_000, 1_000, 1_000)

        new_end = booked[extend].hold_until + timedelta(days=3)
        extended = await holds.extend_hold(env.client, seller, extend, new_end)
        assert extended.hold_until == new_end and extended.status == "on_hold"

        cancelled = await holds.cancel_hold(env.client, seller, cancel)
        assert cancelled.status == "cancelled"
        # The cancelled earning counts nowhere: it was refunded during its hold.
        assert views(balances(engine, marketplace, seller)) == (3_000, 1_000, 1_000)
        assert open_holds(engine, marketplace, seller) == [(extend, "earning")]

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
            (holds.release_hold(env.client, f"nobody-{uid}", release), "hold_not_found"),
        ]
        before = balances(engine, marketplace, seller)
        for request, code in rejected:
            with pytest.raises(WorkflowRequestError) as error:
                await request
            assert error.value.code == code, error.value.message
        assert balances(engine, marketplace, seller) == before, "a rejected request wrote"

        # Each operator request is in the workflow's history.
        accepted = [
            e
            for e in await history_events(env, seller)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert len(accepted) == 3 + len(rejected) - 1  # the unknown seller has no workflow

        # The extended hold ends 10 days after booking, not 7.
        await env.sleep(timedelta(days=8))
        await asyncio.sleep(0.5)
        assert views(balances(engine, marketplace, seller)) == (3_000, 1_000, 1_000)
        await env.sleep(timedelta(days=2, minutes=1))
        await eventually(
            lambda: _assert(views(balances(engine, marketplace, seller)) == (3_000, 3_000, 3_000))
        )
    with engine.begin() as conn:
        assert marketplace.get_earning(conn, seller, cancel).status is EarningStatus.CANCELLED
        assert marketplace.get_earning(conn, seller, extend).status is EarningStatus.POSTED


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
        earning = await book_now(env, engine, marketplace, seller, order, 20_000, 2_000)
        assert earning.reserve_amount == 1_800
        await eventually(lambda: _running(env, seller))
        await env.sleep(timedelta(days=2, minutes=1))

        def reserved() -> None:
            b = balances(engine, marketplace, seller)
            # Posted, but 10% of net held back: not available.
            assert (b.posted, b.available, b.in_reserve) == (18_000, 16_200, 1_800)

        await eventually(reserved)
        assert open_holds(engine, marketplace, seller) == [(order, "reserve")]

        await env.sleep(timedelta(days=29))
        await asyncio.sleep(0.5)
        assert balances(engine, marketplace, seller).available == 16_200
        await env.sleep(timedelta(days=1, minutes=1))

        def released() -> None:
            b = balances(engine, marketplace, seller)
            assert (b.pending, b.posted, b.available, b.in_reserve) == (18_000, 18_000, 18_000, 0)

        await eventually(released)
        assert open_holds(engine, marketplace, seller) == []
    assert ledger_transaction_count(engine, f"reserve:{seller}/{order}") == 1


async def test_only_an_earlier_hold_end_wakes_the_workflow(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    """The first earning starts the workflow; later ones that end after its timer send nothing
    (no signal, no workflow task); one that ends earlier wakes it once."""
    env, seller = skipping_env, f"s-{uid}"
    create_seller(engine, marketplace, seller, hold_period=timedelta(days=7))
    async with running_worker(env.client, engine, task_queue=task_queue):
        first = await book_now(env, engine, marketplace, seller, f"o0-{uid}", 100)

        async def timer_at(end: Any) -> None:
            state = await holds.get_holds_state(env.client, seller)
            assert state is not None and state.timer_at == end

        await eventually(lambda: timer_at(first.hold_until))
        for i in range(1, 21):
            await book_now(env, engine, marketplace, seller, f"o{i}-{uid}", 100)
        await asyncio.sleep(1.5)  # a sweep of the dispatcher (every second in tests) too
        events = await history_events(env, seller)
        signals = [
            e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        assert len(signals) == 1, "only the first earning's wake"

        with engine.begin() as conn:
            marketplace.update_seller(conn, seller, hold_period=timedelta(days=1))
        sooner = await book_now(env, engine, marketplace, seller, f"soon-{uid}", 100)
        await eventually(lambda: timer_at(sooner.hold_until))
        events = await history_events(env, seller)
        assert (
            sum(
                1
                for e in events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            )
            == 2
        )
    with engine.begin() as conn:
        clock = conn.execute(
            text("SELECT wake_requested_at FROM seller_hold_clocks WHERE seller_id = :s"),
            {"s": seller},
        ).scalar_one()
    assert clock is None, "the turn answered the request"


def _assert(condition: bool) -> None:
    assert condition


async def _running(env: SkippingEnv, seller: str) -> None:
    state = await holds.get_holds_state(env.client, seller)
    assert state is not None and state.timer_at is not None
