"""Activities of the seller hold workflow: settle what is due (set-based), and the operators'
release, extension and cancellation of a hold. Each runs database transactions through
``marketplace``; each is idempotent (keyed by seller and order), so a retry or a replay never
moves money twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine
from temporalio import activity

from activities.database import DatabaseActivities, in_transaction
from activities.results import earning_result
from contracts.holds import (
    BOOK_EARNING,
    CANCEL_EARNING,
    EXTEND_HOLD,
    POST_EARNING,
    RELEASE_RESERVE,
    SETTLE_HOLDS,
    BookEarningInput,
    EarningResult,
    ExtendHoldInput,
    HoldsSummary,
    OrderEarningInput,
    PostEarningInput,
    SettleHoldsInput,
    SettleHoldsResult,
)
from marketplace import Earning, Marketplace
from observability.metrics import HOLD_RELEASES

DEFAULT_RELEASE_WINDOW = timedelta(seconds=5)
# One settle activity works through due batches for at most this long, then the workflow runs it
# again (its history grows by one activity per this much work, not per hold).
SETTLE_BUDGET = timedelta(seconds=5)


class SellerActivities(DatabaseActivities):
    """Built once per worker with its engine; the methods are the activities (sync: the worker
    runs them in its thread pool). ``release_window``: a seller's releases come at most once
    per window (``PAYOUTS_HOLD_RELEASE_WINDOW``)."""

    def __init__(
        self,
        engine: Engine,
        marketplace: Marketplace | None = None,
        *,
        release_window: timedelta = DEFAULT_RELEASE_WINDOW,
    ) -> None:
        super().__init__(engine, marketplace)
        self.release_window = release_window

    def _seller(self, conn: Connection, seller_id: str | None, order_id: str) -> str:
        return seller_id or self.marketplace.seller_of_order(conn, order_id)

    @staticmethod
    def _first_attempt() -> bool:
        """An operator's request is checked strictly on its first attempt (a hold that ended,
        an end not later: refused); a retry finds its own earlier attempt's work done, so the
        state it asked for is then its answer."""
        return activity.info().attempt == 1

    @activity.defn(name=SETTLE_HOLDS)
    def settle_holds(self, input: SettleHoldsInput) -> SettleHoldsResult:
        """A turn of the seller's hold workflow: post every earning whose hold ended by
        ``input.at`` (a seller on a test clock: the clock's time) and release every reserve due,
        set-based, one database transaction per
        batch (each idempotent: what was settled is no longer due), and record when to look
        next (``marketplace.holds``)."""
        deadline = time.monotonic() + SETTLE_BUDGET.total_seconds()
        posted = released = 0
        while True:
            batch = in_transaction(
                self.engine,
                lambda conn: self.marketplace.holds.settle_due(
                    conn, input.seller_id, at=input.at, window=self.release_window
                ),
            )
            posted += batch.posted
            released += batch.released
            HOLD_RELEASES.inc(batch.posted)
            if not batch.more or time.monotonic() > deadline:
                break
            activity.heartbeat(posted, released)
        with self.engine.connect() as conn:
            clock = self.marketplace.holds.clock(conn, input.seller_id)
        return SettleHoldsResult(
            posted=posted,
            released=released,
            more=batch.more,
            # A seller on a test clock waits for the clock's advance to wake it, not for a timer
            # in wall time (its timer is in the clock's time).
            timer_at=clock.timer_at if clock.test_clock_id is None else None,
            test_clock_id=clock.test_clock_id,
            summary=HoldsSummary(
                on_hold=clock.on_hold,
                on_hold_count=clock.on_hold_count,
                in_reserve=clock.in_reserve,
                in_reserve_count=clock.in_reserve_count,
                as_of=datetime.now(UTC),
            ),
        )

    def _write(self, step: Callable[[Connection], Earning]) -> EarningResult:
        """One database step on an earning, in its own transaction."""
        return in_transaction(self.engine, lambda conn: earning_result(step(conn)))

    def _on_earning(
        self,
        input: PostEarningInput | OrderEarningInput | ExtendHoldInput,
        step: Callable[[Connection, str, str], Earning],
    ) -> EarningResult:
        """One database step on the earning an input names (seller, order), in its own
        transaction."""
        return self._write(
            lambda conn: step(
                conn, self._seller(conn, input.seller_id, input.order_id), input.order_id
            )
        )

    @activity.defn(name=BOOK_EARNING)
    def book_earning(self, input: BookEarningInput) -> EarningResult:
        """The pending ledger transaction of an order, on hold for the seller's hold period
        (read from the seller now). Bookings are the API's own database writes; this activity
        serves hold workflows of the first shape, which booked through an update."""
        return self._write(
            lambda conn: self.marketplace.book_earning(
                conn,
                seller_id=input.seller_id,
                order_id=input.order_id,
                amount=input.amount,
                fee=input.fee,
                metadata=input.metadata,
                booked_at=input.booked_at,
            )
        )

    @activity.defn(name=POST_EARNING)
    def post_earning(self, input: PostEarningInput) -> EarningResult:
        """Post the earning now (an operator's release) and hold back its rolling reserve."""
        result = self._on_earning(
            input,
            lambda conn, seller_id, order_id: self.marketplace.post_earning(
                conn, seller_id, order_id, at=input.at, require_on_hold=self._first_attempt()
            ),
        )
        HOLD_RELEASES.inc()  # committed (a retried attempt that had committed counts again)
        return result

    @activity.defn(name=CANCEL_EARNING)
    def cancel_earning(self, input: OrderEarningInput) -> EarningResult:
        """Refund during the hold: archive the pending earning."""
        return self._on_earning(
            input,
            lambda conn, seller_id, order_id: self.marketplace.cancel_earning(
                conn, seller_id, order_id, require_on_hold=self._first_attempt()
            ),
        )

    @activity.defn(name=EXTEND_HOLD)
    def extend_hold(self, input: ExtendHoldInput) -> EarningResult:
        return self._on_earning(
            input,
            lambda conn, seller_id, order_id: self.marketplace.extend_hold(
                conn, seller_id, order_id, input.hold_until, require_later=self._first_attempt()
            ),
        )

    @activity.defn(name=RELEASE_RESERVE)
    def release_reserve(self, input: OrderEarningInput) -> EarningResult:
        """The reserve period ended: archive the reserve's pending debit."""
        return self._on_earning(input, self.marketplace.release_reserve)
