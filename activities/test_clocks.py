"""The activities of a test clock's advance (``workflows.test_clocks``): a step of the advance in
the database (``marketplace.test_clocks``), and waking the workflows of the clock's objects that
have something due by its time (signal-with-start through ``temporal_calls``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.database import in_transaction
from contracts.test_clocks import (
    ADVANCE_TEST_CLOCK,
    WAKE_TEST_CLOCK_OBJECTS,
    AdvanceTestClockInput,
    AdvanceTestClockResult,
    WakeTestClockObjectsInput,
    WakeTestClockObjectsResult,
)
from marketplace.test_clocks import AdvanceNotRecorded, TestClocks
from temporal_calls.holds import wake_seller_holds
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
        return [self.advance_test_clock, self.wake_test_clock_objects]

    @activity.defn(name=ADVANCE_TEST_CLOCK)
    def advance_test_clock(self, input: AdvanceTestClockInput) -> AdvanceTestClockResult:
        """One step of the advance, in one database transaction (``TestClocks.advance_step``).
        Retried while the advance's request has not committed yet."""
        try:
            step = in_transaction(
                self.engine,
                lambda conn: self.clocks.advance_step(conn, input.clock_id, input.advance),
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
        that is not running starts)."""
        if self.client is None:
            raise ApplicationError(
                "the worker has no Temporal client to wake workflows with",
                type="no_temporal_client",
            )
        client = self.client

        def read() -> tuple[list[str], list[str]]:
            due = in_transaction(
                self.engine, lambda conn: self.clocks.due_objects(conn, input.clock_id)
            )
            return due.seller_ids, due.wallet_ids

        sellers, wallets = await asyncio.to_thread(read)
        await asyncio.gather(
            *(wake_seller_holds(client, s, task_queue=activity.info().task_queue) for s in sellers),
            *(
                wake_wallet_expiries(client, w, task_queue=activity.info().task_queue)
                for w in wallets
            ),
        )
        return WakeTestClockObjectsResult(sellers=len(sellers), wallets=len(wallets))
