"""Payout runs on the Temporal dev server with the platform's worker (real activities, real
PostgreSQL; the payout workflow is a stand-in that returns what it was asked to pay, as the real
one is tested on its own): real firings at chosen instants, triggers, the skip reasons, the
overlap policy, and the run's idempotency."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from temporalio import activity
from temporalio.client import Client

import marketplace.payout_runs as payout_runs_module
from activities.payout_runs import PayoutRunActivities
from activities.registry import build_activities
from contracts.payout_runs import DECIDE_PAYOUT_RUN, DecidePayoutRunInput, PayoutRunResult
from contracts.payouts import PayoutWorkflowInput, payout_workflow_id
from marketplace import Marketplace, Payouts
from marketplace.payout_runs import (
    PayoutRun,
    decide_payout_run,
    list_payout_runs,
    payout_runs,
    run_payout_id,
)
from temporal_calls.errors import unless_not_found
from temporal_calls.schedules import (
    delete_payout_schedule,
    describe_payout_schedule,
    pause_payout_schedule,
    put_payout_schedule,
    trigger_payout_schedule,
)
from tests.schedules.conftest import eventually, new_seller, workflows_with_stand_in
from tests.temporal_env import running_worker


def runs_of(engine: Engine, seller_id: str) -> list[PayoutRun]:
    with engine.connect() as conn:
        return list_payout_runs(conn, seller_id)


async def wait_runs(engine: Engine, seller_id: str, count: int = 1) -> list[PayoutRun]:
    async def probe() -> list[PayoutRun] | None:
        runs = runs_of(engine, seller_id)
        return runs if len(runs) >= count else None

    return await eventually(probe)


async def paid_input(client: Client, payout_id: str) -> PayoutWorkflowInput:
    """The stand-in payout's input (the run records its decision, then starts the child)."""
    handle = client.get_workflow_handle(
        payout_workflow_id(payout_id), result_type=PayoutWorkflowInput
    )

    async def result() -> PayoutWorkflowInput | None:
        found: PayoutWorkflowInput | None = await unless_not_found(handle.result(), None)
        return found

    return await eventually(result)


async def test_a_daily_run_fires_at_its_local_time_and_pays_the_available_balance(
    temporal_client: Client, engine: Engine, task_queue: str
) -> None:
    seller_id = new_seller(engine, available=12_345)
    zone = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a half-hour offset
    async with running_worker(
        temporal_client, engine, task_queue=task_queue, workflows=workflows_with_stand_in()
    ):
        due = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
        local = due.astimezone(zone)
        info = await put_payout_schedule(
            temporal_client,
            seller_id,
            interval="daily",
            time_of_day=local.strftime("%H:%M:%S"),
            time_zone="Asia/Kolkata",
            minimum_amount=10_000,
            task_queue=task_queue,
        )
        assert info.next_run_times[0] == due
        assert info.next_run_times[1] == due + timedelta(days=1)
        (run,) = await wait_runs(engine, seller_id)
        assert run.scheduled_at == due
        assert run.outcome == "started"
        assert run.amount == 12_345
        assert run.payout_id == run_payout_id(run.id)
        assert run.id == f"{seller_id}:{due.isoformat().replace('+00:00', 'Z')}"
        child = await paid_input(temporal_client, run.payout_id)
        assert (child.seller_id, child.amount, child.origin, child.run_id) == (
            seller_id,
            12_345,
            "scheduled",
            run.id,
        )
        described = await describe_payout_schedule(temporal_client, seller_id)
        assert described.recent_run_times == [due]
        assert described.runs == 1
        await delete_payout_schedule(temporal_client, seller_id)


async def test_triggered_runs_record_why_they_skipped(
    temporal_client: Client, engine: Engine, task_queue: str
) -> None:
    no_account = new_seller(engine, available=5_000, payout_account=False)
    below = new_seller(engine, available=999)
    nothing = new_seller(engine)
    async with running_worker(
        temporal_client, engine, task_queue=task_queue, workflows=workflows_with_stand_in()
    ):
        for seller_id in (no_account, below, nothing):
            await put_payout_schedule(
                temporal_client,
                seller_id,
                interval="manual",
                minimum_amount=1_000,
                task_queue=task_queue,
            )
            await trigger_payout_schedule(temporal_client, seller_id)
        reasons = {}
        for seller_id in (no_account, below, nothing):
            (run,) = await wait_runs(engine, seller_id)
            assert run.outcome == "skipped"
            assert run.payout_id is None and run.amount is None
            reasons[seller_id] = run.reason
            await delete_payout_schedule(temporal_client, seller_id)
    assert reasons == {
        no_account: "no_payout_account",
        below: "below_minimum",
        nothing: "nothing_available",
    }


async def test_a_paused_schedule_still_runs_when_triggered(
    temporal_client: Client, engine: Engine, task_queue: str
) -> None:
    seller_id = new_seller(engine, available=700)
    async with running_worker(
        temporal_client, engine, task_queue=task_queue, workflows=workflows_with_stand_in()
    ):
        await put_payout_schedule(
            temporal_client, seller_id, interval="daily", task_queue=task_queue
        )
        await pause_payout_schedule(temporal_client, seller_id, "checking the bank account")
        await trigger_payout_schedule(temporal_client, seller_id)
        (run,) = await wait_runs(engine, seller_id)
        assert (run.outcome, run.amount) == ("started", 700)
        assert (await describe_payout_schedule(temporal_client, seller_id)).paused
        await delete_payout_schedule(temporal_client, seller_id)


async def test_overlapping_runs_are_skipped_not_stacked(
    temporal_client: Client, engine: Engine, task_queue: str
) -> None:
    """A run still deciding when the next firing comes: the firing is skipped (overlap policy),
    not queued, and only one run is recorded."""
    seller_id = new_seller(engine, available=2_000)
    entered = threading.Event()
    release = threading.Event()
    real = PayoutRunActivities(engine)

    @activity.defn(name=DECIDE_PAYOUT_RUN)
    def slow_decide(input: DecidePayoutRunInput) -> PayoutRunResult:
        entered.set()
        release.wait(120)
        return real.decide_payout_run(input)

    activities = [
        a for a in build_activities(engine) if getattr(a, "__name__", "") != "decide_payout_run"
    ]
    async with running_worker(
        temporal_client,
        engine,
        task_queue=task_queue,
        workflows=workflows_with_stand_in(),
        activities=[*activities, slow_decide],
    ):
        await put_payout_schedule(
            temporal_client, seller_id, interval="manual", task_queue=task_queue
        )
        await trigger_payout_schedule(temporal_client, seller_id)

        async def running() -> bool | None:
            return True if entered.is_set() else None

        await eventually(running)
        await trigger_payout_schedule(temporal_client, seller_id)
        await trigger_payout_schedule(temporal_client, seller_id)

        async def skipped() -> int | None:
            info = await describe_payout_schedule(temporal_client, seller_id)
            return info.skipped_overlapping if info.skipped_overlapping >= 2 else None

        # The schedule's own workflow counts the skips: slow on a busy machine.
        assert await eventually(skipped, timeout=90) == 2
        release.set()
        (run,) = await wait_runs(engine, seller_id)
        assert (run.outcome, run.amount) == ("started", 2_000)
        info = await describe_payout_schedule(temporal_client, seller_id)
        assert info.runs == 1
        assert len(runs_of(engine, seller_id)) == 1
        await delete_payout_schedule(temporal_client, seller_id)


def test_a_run_is_decided_once(engine: Engine) -> None:
    """Deciding the same run again (a retried activity) returns the first decision, even after
    the balance changed; another firing decides afresh."""
    seller_id = new_seller(engine, available=4_000)
    market = Marketplace()
    at = datetime(2027, 1, 31, 12, tzinfo=UTC)
    run_id = f"{seller_id}:2027-01-31T12:00:00Z"
    with engine.begin() as conn:
        first, preview = decide_payout_run(
            conn, market, run_id=run_id, seller_id=seller_id, scheduled_at=at, minimum_amount=0
        )
    assert preview is not None and preview.amount == 4_000
    with engine.begin() as conn:
        from tests.schedules.conftest import add_available

        add_available(conn, market, seller_id, 1_000)
        again, none = decide_payout_run(
            conn, market, run_id=run_id, seller_id=seller_id, scheduled_at=at, minimum_amount=0
        )
        other, _ = decide_payout_run(
            conn,
            market,
            run_id=f"{seller_id}:2027-02-28T12:00:00Z",
            seller_id=seller_id,
            scheduled_at=at + timedelta(days=28),
            minimum_amount=0,
        )
    assert none is None
    assert again == first
    assert (first.outcome, first.amount) == ("started", 4_000)
    # Each started run reserved its payout in its own transaction: the second firing found
    # only what came after the first.
    assert other.amount == 1_000 and other.payout_id != first.payout_id
    with engine.connect() as conn:
        payouts = Payouts(market)
        for run, amount in ((first, 4_000), (other, 1_000)):
            assert run.payout_id is not None
            payout = payouts.get_payout(conn, run.payout_id)
            assert (payout.amount, payout.status, payout.origin) == (amount, "pending", "scheduled")
        assert market.seller_balances(conn, seller_id).available == 0
    with engine.connect() as conn:
        ids = conn.execute(
            select(payout_runs.c.id).where(payout_runs.c.seller_id == seller_id)
        ).scalars()
        assert sorted(ids) == sorted([first.id, other.id])


def test_a_run_whose_balance_moves_after_its_preview_reserves_what_is_there(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refund or chargeback committing between the preview and the reservation: the decision
    looks again, so a run recorded as started always has its money reserved."""
    seller_id = new_seller(engine, available=3_000)
    market = Marketplace()
    real_preview = payout_runs_module.payout_preview
    calls = []

    def stale_once(*args: Any, **kwargs: Any) -> Any:
        preview = real_preview(*args, **kwargs)
        calls.append(preview.amount)
        if len(calls) == 1:  # as if 500 more had been there a moment ago
            return dataclasses.replace(preview, available=3_500, amount=3_500)
        return preview

    monkeypatch.setattr(payout_runs_module, "payout_preview", stale_once)
    at = datetime(2027, 3, 31, 12, tzinfo=UTC)
    with engine.begin() as conn:
        run, _ = decide_payout_run(
            conn,
            market,
            run_id=f"{seller_id}:2027-03-31T12:00:00Z",
            seller_id=seller_id,
            scheduled_at=at,
            minimum_amount=0,
        )
    assert calls == [3_000, 3_000]
    assert (run.outcome, run.amount) == ("started", 3_000)
    with engine.connect() as conn:
        assert run.payout_id is not None
        assert Payouts(market).get_payout(conn, run.payout_id).amount == 3_000
        assert market.seller_balances(conn, seller_id).available == 0
