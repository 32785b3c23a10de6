"""Group commit of bookings: the earning requests an API process has in flight at once are booked
in one database transaction (``marketplace.booking``, set-based), and each request is answered
with its own outcome once that transaction committed.

Every booking credits the platform's clearing and fees accounts, so bookings queue on those two
rows whatever else they touch; a transaction holds them from its ledger statement to the end of
its COMMIT. Booking the requests of one moment together takes those locks (and pays the COMMIT)
once for all of them. Under light load a batch is a single request and waits for nothing; under
load the requests that arrive while a batch is being written form the next one, up to
``max_batch`` (natural batching, as group commit does it).

Nothing changes for a client: the earning is committed before its 201 (or 200, or problem), a
batch's items are independent (one item's conflict is that item's answer), and a batch that
fails as a whole for a reason that a re-run fixes (a deadlock, a concurrent booking of the same
order, a stale pooled connection) runs again, so that its items are answered as the re-run
finds them (a concurrent duplicate as a replay). Requests with an ``Idempotency-Key`` are booked
in their own transaction instead: the key's record must commit with their writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from marketplace import BookingOutcome, EarningRequest, Marketplace

log = logging.getLogger(__name__)

MAX_BATCH = 200
# Batches written at once per process. One: the next batch fills while this one commits, and
# the API's processes' batches (which lock their sellers and the platform's accounts) queue
# behind each other less than with more.
CONCURRENCY = 1
RERUN_SQLSTATES = frozenset({"40P01", "40001", "23505"})
MAX_ATTEMPTS = 3


@dataclass
class _Pending:
    request: EarningRequest
    answer: asyncio.Future[BookingOutcome]


class BookingBatcher:
    """Per API process (``app.state.bookings``); ``book`` from the event loop."""

    def __init__(
        self,
        engine: Engine,
        market: Marketplace,
        *,
        max_batch: int = MAX_BATCH,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.engine = engine
        self.market = market
        self.max_batch = max_batch
        self.concurrency = concurrency
        self._queue: list[_Pending] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.booked = 0

    async def book(self, request: EarningRequest) -> BookingOutcome:
        """The request's outcome once its batch committed; raises what failed the batch."""
        answer: asyncio.Future[BookingOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(request, answer))
        if len(self._writers) < self.concurrency:
            self._writers.add(asyncio.create_task(self._drain()))
        return await answer

    async def _drain(self) -> None:
        """Write batches while requests wait. The writer leaves the set of writers itself, with
        no await between its last look at the queue and leaving (a done-callback would leave a
        moment later, when a request queued in between would find no writer to take it)."""
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._write(batch)
        finally:
            self._writers.discard(asyncio.current_task())

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await run_in_threadpool(self._commit, [p.request for p in batch])
        except BaseException as exc:
            for pending in batch:
                if not pending.answer.done():
                    pending.answer.set_exception(exc)
            return
        self.batches += 1
        self.booked += len(batch)
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.answer.done():
                pending.answer.set_result(outcome)

    def _commit(self, requests: Sequence[EarningRequest]) -> list[BookingOutcome]:
        """One transaction for the batch (its writes go with the COMMIT as one message, the
        reads before in autocommit mode), run again on a failure that a re-run fixes."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    with conn.begin():
                        return self.market.book_earnings(conn, requests, at_commit=True)
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                stale = exc.connection_invalidated and attempt == 1
                if attempt < MAX_ATTEMPTS and (state in RERUN_SQLSTATES or stale):
                    log.info("re-running a batch of %d bookings after %s", len(requests), state)
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover
