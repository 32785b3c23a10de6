"""The activities of a test clock's advance (``workflows.test_clocks``): a step of the advance in
the database (``marketplace.test_clocks``), waking the workflows of the clock's objects that have
something due by its time (signal-with-start through ``temporal_calls``), and running its
sellers' payout schedules by its time (``temporal_calls.schedules``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.database import in_transaction
from contracts.test_clocks import (
    ADVANCE_TEST_CLOCK,
    RUN_TEST_CLOCK_SCHEDULES,
    WAKE_TEST_CLOCK_OBJECTS,
    AdvanceTestClockInput,
    AdvanceTestClockResult,
    RunTestClockSchedulesInput,
    RunTestClockSchedulesResult,
    WakeTestClockObjectsInput,
    WakeTestClockObjectsResult,
)
from marketplace.test_clocks import AdvanceNotRecorded, DueObjects, TestClocks
from temporal_calls.disputes import tell_deadline_passed
from temporal_calls.errors import WorkflowRequestError
from temporal_calls.holds import wake_seller_holds
from temporal_calls.schedules import (
    PayoutScheduleInfo,
    describe_payout_schedule,
    next_firing,
    start_clock_payout_run,
)
from temporal_calls.wallets import wake_wallet_expiries

# How often a step looks for its advance's request to have committed (about three minutes).
RECORD_ATTEMPTS = 25


class TestClockActivities:
    """Built once per worker with its engine and Temporal client (to wake workflows)."""

    __test__ = False  # no test class for pytest

    def __init__(self, engine: Engine, client: Client | None = None) -> None:
        self.engine = engine
        self.client = client
        self.clocks = TestClocks()

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.advance_test_clock,
            self.wake_test_clock_objects,
            self.run_test_clock_schedules,
        ]

    def _client(self) -> Client:
        if self.client is None:
            raise ApplicationError(
                "the worker has no Temporal client to start workflows with",
                type="no_temporal_client",
            )
        return self.client

    @activity.defn(name=ADVANCE_TEST_CLOCK)
    def advance_test_clock(self, input: AdvanceTestClockInput) -> AdvanceTestClockResult:
        """One step of the advance, in one database transaction (``TestClocks.advance_step``).
        Retried while the advance's request has not committed yet."""
        try:
            step = in_transaction(
                self.engine,
                lambda conn: self.clocks.advance_step(
                    conn,
                    input.clock_id,
                    input.advance,
                    move=input.move,
                    scheduled=input.scheduled,
                ),
            )
        except AdvanceNotRecorded as exc:
            # Its request has not committed yet: retried (STEP_RETRY) for a few minutes, then
            # given up (the request rolled back; a new request starts its advance again).
            given_up = activity.info().attempt >= RECORD_ATTEMPTS
            raise ApplicationError(
                str(exc), type="advance_not_recorded", non_retryable=given_up
            ) from exc
        return AdvanceTestClockResult(str(step.outcome), step.frozen_time, step.outstanding)

    @activity.defn(name=WAKE_TEST_CLOCK_OBJECTS)
    async def wake_test_clock_objects(
        self, input: WakeTestClockObjectsInput
    ) -> WakeTestClockObjectsResult:
        """Wake the hold workflow of every seller and the expiry workflow of every wallet of the
        clock with something due by its time (each signal-with-start: idempotent, a workflow
        that is not running starts), and tell every open dispute whose deadline passed."""
        client = self._client()

        def read() -> DueObjects:
            return in_transaction(
                self.engine, lambda conn: self.clocks.due_objects(conn, input.clock_id)
            )

        due = await asyncio.to_thread(read)
        sellers, wallets = due.seller_ids, due.wallet_ids
        await asyncio.gather(
            *(tell_deadline_passed(client, d) for d in due.dispute_ids),
            *(wake_seller_holds(client, s, task_queue=activity.info().task_queue) for s in sellers),
            *(
                wake_wallet_expiries(client, w, task_queue=activity.info().task_queue)
                for w in wallets
            ),
        )
        return WakeTestClockObjectsResult(
            sellers=len(sellers), wallets=len(wallets), disputes=len(due.dispute_ids)
        )

    @activity.defn(name=RUN_TEST_CLOCK_SCHEDULES)
    async def run_test_clock_schedules(
        self, input: RunTestClockSchedulesInput
    ) -> RunTestClockSchedulesResult:
        """The payout schedules of the clock's sellers, by the clock's time: with ``run_due``,
        run every firing at the clock's time of a schedule that is not paused (the schedule's
        own run workflow, keyed by the firing: a retry runs nothing twice) and wait for its
        decision to be recorded; and say when the next firing after it comes."""
        client = self._client()

        def read() -> tuple[datetime, list[str]]:
            with self.engine.connect() as conn:
                return (
                    self.clocks.clock_time(conn, input.clock_id),
                    self.clocks.clock_sellers(conn, input.clock_id),
                )

        now, sellers = await asyncio.to_thread(read)
        infos = await asyncio.gather(*(self._schedule(client, s) for s in sellers))
        schedules = [
            info
            for info in infos
            if info is not None and not info.paused and info.test_clock_id == input.clock_id
        ]
        due = [
            info
            for info in schedules
            if input.run_due and next_firing(info.spec, now - timedelta(microseconds=1)) == now
        ]
        await asyncio.gather(
            *(
                start_clock_payout_run(
                    client,
                    info.seller_id,
                    info.spec,
                    test_clock_id=input.clock_id,
                    scheduled_at=now,
                    task_queue=activity.info().task_queue,
                )
                for info in due
            )
        )
        firings = [f for info in schedules if (f := next_firing(info.spec, now)) is not None]
        return RunTestClockSchedulesResult(runs=len(due), next_firing=min(firings, default=None))

    @staticmethod
    async def _schedule(client: Client, seller_id: str) -> PayoutScheduleInfo | None:
        try:
            return await describe_payout_schedule(client, seller_id)
        except WorkflowRequestError as err:
            if err.code == "payout_schedule_not_found":
                return None
            raise
