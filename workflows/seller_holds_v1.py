"""The first shape of the seller hold workflow, kept so that runs begun in it replay and move over.

Until version 0006 a hold workflow kept every open hold in its state (and carried them over
continue-as-new), booked earnings through its ``add_earning`` update and posted them by activity
one by one. ``SellerHoldWorkflow`` runs this code for a run whose history began in that shape
(``workflow.patched`` tells), command for command as it ran then, so the run replays. The first
``wake`` signal it receives (no worker of that time sent one; today's dispatcher does, to every
seller with open holds, once version 0006 is migrated) makes it continue as new in the database
shape at the top of its next loop turn: a decision recorded in its history (the signal), so it
replays the same. The database has every hold, so nothing it kept in memory is needed there.

Do not change what this code does: only ``SellerHoldWorkflow`` calls it, and only for old runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import hold_requests
from workflows.common import DURABLE_RETRY, business_retry, call_activity, history_too_long
from workflows.errors import business_error, rejected

with workflow.unsafe.imports_passed_through():
    from contracts.holds import (
        OPEN_HOLDS,
        RECENT_ORDERS_KEPT,
        RELEASE_RESERVE,
        AddEarningRequest,
        CancelHoldRequest,
        EarningResult,
        ExtendHoldRequest,
        Hold,
        OrderEarningInput,
        ReleaseHoldRequest,
        SellerHoldInput,
    )
    from contracts.payouts import RefundEarningInput, RefundResult

# Operator updates (release, extend, cancel; each with an update id of its own) make a few
# attempts, then the caller hears (workflows.common.REQUEST_RETRY); posting a due hold and
# releasing a reserve retry until the database is back (DURABLE_RETRY).

# Keyed requests (booking an earning, update id ``earning:<order>``; refunding one on hold,
# ``refund:<id>``): Temporal keeps an update's outcome under its id and answers every retry of
# the request with it, so a booking that gave up while the database was down would fail that
# order for good. These retry until the database answers; the caller's wait is bounded by its
# own timeout (the API's is a 503, and the client's retry joins this same update).
KEYED_REQUEST_RETRY = business_retry(timedelta(seconds=10))
# Due holds settled concurrently per loop turn.
SETTLE_BATCH = 50


class InMemoryHolds:
    """The first shape's state and behaviour (see the module docstring)."""

    def __init__(self, input: SellerHoldInput) -> None:
        self.move_requested = False
        """Set by the ``wake`` signal: continue as new in the database shape."""
        self._seller_id = input.seller_id
        self._history_limit = input.history_limit
        self._holds: dict[str, Hold] = {h.order_id: h for h in input.holds}
        # Insertion-ordered set of finished orders (posted without reserve, reserve released,
        # cancelled), bounded.
        self._recent: dict[str, None] = dict.fromkeys(input.recent_order_ids)
        self._posted_count = input.posted_count
        # Orders an activity is working on right now (the loop or an operator update).
        self._busy: set[str] = set()
        self._wake = False
        # The due time the loop's timer last waited for (None: no timer). After a settle the
        # loop recomputes it anyway, so a stale value only costs an extra wake-up.
        self._sleeping_until: datetime | None = None
        self._published: tuple[int, str] | None = None

    async def run(self) -> None:
        """The loop (the caller upserted SellerId first, as the first shape did)."""
        while True:
            if self.move_requested:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    SellerHoldInput(seller_id=self._seller_id, history_limit=self._history_limit)
                )
            self._publish()
            if self._continue_as_new_due():
                # Let running handlers (a booking, an operator update) finish first, so none is
                # cut off; their holds are then part of what is carried over.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carry_over())
            self._wake = False
            now = workflow.now()
            due = [h for h in self._holds.values() if self._is_due(h, now)]
            if due:
                await asyncio.gather(*(self._settle(h) for h in due[:SETTLE_BATCH]))
                continue
            next_due = self._next_due()
            # Sleep until the next hold ends, or sooner if an earlier one arrives.
            self._sleeping_until = next_due
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake or self._continue_as_new_due(),
                    timeout=(next_due - now) if next_due is not None else None,
                    timeout_summary="next hold end",
                )

    # ------------------------------------------------------------ updates (and validators)

    async def add_earning(self, request: AddEarningRequest) -> EarningResult:
        """Book the order's earning (pending ledger transaction) and hold it. A duplicate order id
        returns the earning as it is, never books twice; other terms fail (earning_conflict)."""
        earning = await hold_requests.book_earning(self._seller_id, request, KEYED_REQUEST_RETRY)
        order_id = earning.order_id
        keeps = earning.status == "on_hold" or earning.reserve_open
        if keeps and order_id not in self._holds and order_id not in self._recent:
            hold = Hold.from_earning(earning)
            self._holds[order_id] = hold
            # Wake the loop only if this hold ends before the timer it sleeps on (most earnings
            # end later, and then no timer is cancelled and restarted).
            due = hold.due_at
            if self._sleeping_until is None or (due is not None and due < self._sleeping_until):
                self._wake = True
            self._publish()
        return earning

    def validate_add_earning(self, request: AddEarningRequest) -> None:
        hold_requests.check_add_earning(request)

    async def release_hold(self, request: ReleaseHoldRequest) -> EarningResult:
        """End the hold now: post the earning (and hold its reserve, if any)."""
        return await self._operate(
            request.order_id,
            lambda: hold_requests.post_earning(self._seller_id, request.order_id),
        )

    def validate_release_hold(self, request: ReleaseHoldRequest) -> None:
        self._require_on_hold(request.order_id)

    async def extend_hold(self, request: ExtendHoldRequest) -> EarningResult:
        """Move the hold's end later."""
        return await self._operate(
            request.order_id,
            lambda: hold_requests.extend_hold(self._seller_id, request),
            check=lambda hold: self._require_later(hold, request),
        )

    def validate_extend_hold(self, request: ExtendHoldRequest) -> None:
        hold = self._require_on_hold(request.order_id)
        hold_requests.check_hold_until(request)
        self._require_later(hold, request)

    async def cancel_hold(self, request: CancelHoldRequest) -> EarningResult:
        """Refund during the hold: archive the pending earning and drop the hold."""
        return await self._operate(
            request.order_id,
            lambda: hold_requests.cancel_earning(self._seller_id, request.order_id),
        )

    def validate_cancel_hold(self, request: CancelHoldRequest) -> None:
        self._require_on_hold(request.order_id)

    async def refund_earning(self, request: RefundEarningInput) -> RefundResult:
        """Refund (part of) an order on hold, without racing the hold's end: archive the pending
        earning and book the remainder again with the same hold end (the hold stays, due at the
        same time), or drop the hold when nothing is left."""
        order_id = request.order_id
        await workflow.wait_condition(lambda: order_id not in self._busy)
        self._require_on_hold(order_id)  # the loop may have posted it meanwhile
        self._busy.add(order_id)
        try:
            result = await hold_requests.refund_earning(
                self._seller_id, request, KEYED_REQUEST_RETRY
            )
        except ActivityError as err:
            raise business_error(err) from err
        finally:
            self._busy.discard(order_id)
            self._wake = True
        self._apply(result.earning)
        self._publish()
        return result

    def validate_refund_earning(self, request: RefundEarningInput) -> None:
        amount = request.amount
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 2**63
        ):
            raise rejected("amount must be a positive integer of minor units", "validation_failed")
        self._require_on_hold(request.order_id)

    def holds(self) -> list[Hold]:
        """The holds this workflow keeps (earnings on hold, then reserves held), by due time."""
        return sorted(self._holds.values(), key=lambda h: (h.due_at or h.hold_until, h.order_id))

    # ------------------------------------------------------------ internals

    async def _operate(
        self,
        order_id: str,
        activity: Callable[[], Awaitable[EarningResult]],
        check: Callable[[Hold], None] | None = None,
    ) -> EarningResult:
        """Run an operator's activity on a hold, one activity per order at a time."""
        await workflow.wait_condition(lambda: order_id not in self._busy)
        # The loop may have posted it meanwhile: check again.
        hold = self._require_on_hold(order_id)
        if check is not None:
            check(hold)
        self._busy.add(order_id)
        try:
            earning = await activity()
        except ActivityError as err:
            raise business_error(err) from err
        finally:
            self._busy.discard(order_id)
            self._wake = True
        self._apply(earning)
        return earning

    async def _settle(self, hold: Hold) -> None:
        """Post a hold that ended, or release a reserve whose period ended."""
        order_id = hold.order_id
        self._busy.add(order_id)
        try:
            if hold.status == "on_hold":
                earning = await hold_requests.post_earning(self._seller_id, order_id, DURABLE_RETRY)
            else:
                earning = await call_activity(
                    RELEASE_RESERVE,
                    OrderEarningInput(order_id=order_id, seller_id=self._seller_id),
                    EarningResult,
                    DURABLE_RETRY,
                )
            self._apply(earning)
        except ActivityError as err:
            # A business error: the earning changed outside this workflow (e.g. refunded). There
            # is nothing left to post; drop the hold rather than retry forever.
            workflow.logger.error(
                "dropping hold of order %s: %s", order_id, business_error(err).message
            )
            self._finish(order_id)
        finally:
            self._busy.discard(order_id)

    def _apply(self, earning: EarningResult) -> None:
        """Bring the kept hold in line with the earning an activity returned."""
        order_id = earning.order_id
        if earning.status == "on_hold":
            self._holds[order_id] = Hold.from_earning(earning)
            return
        if earning.status == "posted" and order_id in self._holds:
            was_on_hold = self._holds[order_id].status == "on_hold"
            if was_on_hold:
                self._posted_count += 1
            if earning.reserve_open:
                self._holds[order_id] = Hold.from_earning(earning)
                return
        self._finish(order_id)

    def _finish(self, order_id: str) -> None:
        self._holds.pop(order_id, None)
        self._recent[order_id] = None
        while len(self._recent) > RECENT_ORDERS_KEPT:
            del self._recent[next(iter(self._recent))]

    def _is_due(self, hold: Hold, now: datetime) -> bool:
        due = hold.due_at
        return hold.order_id not in self._busy and due is not None and due <= now

    def _next_due(self) -> datetime | None:
        times = [
            h.due_at
            for h in self._holds.values()
            if h.order_id not in self._busy and h.due_at is not None
        ]
        return min(times) if times else None

    def _require_on_hold(self, order_id: str) -> Hold:
        hold = self._holds.get(order_id)
        if hold is not None and hold.status == "on_hold":
            return hold
        if hold is not None or order_id in self._recent:
            raise rejected(
                f"the hold of order {order_id!r} has already ended (released, posted or cancelled)",
                "invalid_hold_state",
            )
        raise rejected(
            f"seller {self._seller_id!r} has no hold for order {order_id!r}", "hold_not_found"
        )

    @staticmethod
    def _require_later(hold: Hold, request: ExtendHoldRequest) -> None:
        if request.hold_until <= hold.hold_until:
            raise rejected(
                f"the new hold end {request.hold_until.isoformat()} must be later than the "
                f"current one, {hold.hold_until.isoformat()}",
                "validation_failed",
            )

    def _continue_as_new_due(self) -> bool:
        return history_too_long(self._history_limit)

    def _carry_over(self) -> SellerHoldInput:
        return SellerHoldInput(
            seller_id=self._seller_id,
            history_limit=self._history_limit,
            holds=list(self._holds.values()),
            recent_order_ids=list(self._recent),
            posted_count=self._posted_count,
        )

    def _publish(self) -> None:
        """Search attribute OpenHolds and the readable details in the UI, when they change."""
        on_hold = [h for h in self._holds.values() if h.status == "on_hold"]
        reserves = len(self._holds) - len(on_hold)
        next_due = self._next_due()
        details = (
            f"{len(on_hold)} earnings on hold ({sum(h.net for h in on_hold)} minor units), "
            f"{reserves} reserves held, {self._posted_count} posted"
            + (
                f"; next release {next_due.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
                if next_due is not None
                else ""
            )
        )
        if self._published is not None and self._published == (len(self._holds), details):
            return
        if self._published is None or self._published[0] != len(self._holds):
            workflow.upsert_search_attributes([OPEN_HOLDS.value_set(len(self._holds))])
        workflow.set_current_details(details)
        self._published = (len(self._holds), details)
