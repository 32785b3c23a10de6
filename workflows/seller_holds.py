"""The per-seller hold workflow (id ``seller-holds/<seller id>``): it keeps time, PostgreSQL keeps
the holds.

Long-lived, one per seller, and the operators' view of the seller's holds in the Temporal UI
(search attributes ``SellerId`` and ``OpenHolds``, details). Each turn is one activity
(``settle_holds``): it posts every earning whose hold ended and releases every reserve whose
period ended, set-based in batches, and records on the seller's clock in the database when the
workflow looks next (the earliest end still ahead, but at most once per release window). The
workflow then sleeps until that time. Nothing per order lives in its state or in its
continue-as-new input, so a turn's history and the input are the same size for ten open holds or
a hundred thousand.

Bookings are the API's own database writes. A booking whose hold ends before the workflow would
look notifies the worker's dispatcher at commit, which sends the ``wake`` signal (signal-with-
start, so a seller's first earning starts the workflow); the dispatcher's sweep repeats a wake
that got lost. Operators release, extend or cancel a hold by update, so each shows in the
history; the activity checks the hold under its row lock and an impossible request fails with
``hold_not_found``, ``invalid_hold_state`` or ``validation_failed``, writing nothing.

Runs that began before holds moved to the database (their history has no ``HOLDS_IN_DATABASE``
marker) run the first shape (``workflows.seller_holds_v1``) and continue as new in this one at
their first ``wake``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import hold_requests
from workflows.common import DURABLE_RETRY, REQUEST_RETRY, check_order_id, history_too_long
from workflows.errors import business_error
from workflows.seller_holds_v1 import InMemoryHolds

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.holds import (
        ADD_EARNING_UPDATE,
        CANCEL_HOLD_UPDATE,
        EXTEND_HOLD_UPDATE,
        HOLDS_QUERY,
        OPEN_HOLDS,
        REFUND_EARNING_UPDATE,
        RELEASE_HOLD_UPDATE,
        SELLER_HOLD_WORKFLOW,
        SETTLE_HOLDS,
        STATE_QUERY,
        WAKE_SIGNAL,
        AddEarningRequest,
        CancelHoldRequest,
        EarningResult,
        ExtendHoldRequest,
        Hold,
        HoldsState,
        HoldsSummary,
        ReleaseHoldRequest,
        SellerHoldInput,
        SettleHoldsInput,
        SettleHoldsResult,
    )
    from contracts.payouts import RefundEarningInput, RefundResult

T = TypeVar("T")

# A run whose history has this marker began in the database shape.
HOLDS_IN_DATABASE = "holds-in-database"

# A turn works through due batches for a few seconds (activities.sellers.SETTLE_BUDGET) and
# heartbeats between them; releasing due holds must happen eventually (DURABLE_RETRY).
SETTLE_TIMEOUT = timedelta(minutes=2)
SETTLE_HEARTBEAT = timedelta(seconds=30)
# A turn that finds its next look already due (a row another transaction held) waits this long,
# so a busy row never spins the workflow.
MIN_SLEEP = timedelta(seconds=1)
# The activity's codes for a hold that is not there or has ended, as the API names them.
_HOLD_CODES = {"earning_not_found": "hold_not_found", "invalid_earning_state": "invalid_hold_state"}


@workflow.defn(name=SELLER_HOLD_WORKFLOW)
class SellerHoldWorkflow:
    @workflow.init
    def __init__(self, input: SellerHoldInput) -> None:
        self._input = input
        self._seller_id = input.seller_id
        self._history_limit = input.history_limit
        self._posted_count = input.posted_count
        self._wake = False
        self._summary = HoldsSummary()
        self._state = HoldsState(seller_id=input.seller_id)
        self._published: tuple[int, str] | None = None
        self._test_clock: str | None = None
        self._shape_decided = False
        self._legacy: InMemoryHolds | None = None

    def _in_memory(self) -> InMemoryHolds | None:
        """The first shape's state if this run began in it (decided once, on first use by the
        run, a signal or an update; validators are read-only and only look: before the decision
        only a new run's first activation validates, and then the shapes' checks agree)."""
        if not self._shape_decided:
            self._shape_decided = True
            if not workflow.patched(HOLDS_IN_DATABASE):
                self._legacy = InMemoryHolds(self._input)
        return self._legacy

    @workflow.run
    async def run(self, input: SellerHoldInput) -> None:
        legacy = self._in_memory()
        workflow.upsert_search_attributes([SELLER_ID.value_set(self._seller_id)])
        if legacy is not None:
            await legacy.run()
            return
        while True:
            if self._continue_as_new_due():
                # Let running handlers (an operator's update) finish first, so none is cut off.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    SellerHoldInput(
                        seller_id=self._seller_id,
                        history_limit=self._history_limit,
                        posted_count=self._posted_count,
                    )
                )
            self._wake = False
            turn: SettleHoldsResult = await workflow.execute_activity(
                SETTLE_HOLDS,
                SettleHoldsInput(seller_id=self._seller_id, at=workflow.now()),
                result_type=SettleHoldsResult,
                start_to_close_timeout=SETTLE_TIMEOUT,
                heartbeat_timeout=SETTLE_HEARTBEAT,
                retry_policy=DURABLE_RETRY,
            )
            self._posted_count += turn.posted
            self._summary = turn.summary
            self._test_clock = turn.test_clock_id
            self._state = HoldsState(
                seller_id=self._seller_id,
                timer_at=turn.timer_at,
                summary=turn.summary,
                posted_count=self._posted_count,
            )
            self._publish()
            if turn.more:
                continue
            timeout = None
            if turn.timer_at is not None:
                timeout = max(turn.timer_at - workflow.now(), MIN_SLEEP)
            # Sleep until the next look, or sooner if a booking or an operator wakes us.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake or self._continue_as_new_due(),
                    timeout=timeout,
                    timeout_summary="next hold end",
                )

    # ------------------------------------------------------------ signals

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self) -> None:
        """A booking's hold ends before this workflow would look (or the sweep thinks so): run
        a turn now."""
        legacy = self._in_memory()
        if legacy is not None:
            # Its next loop turn moves it to the database shape.
            legacy.move_requested = True
            legacy._wake = True
        self._wake = True

    # ------------------------------------------------------------ updates

    @workflow.update(name=RELEASE_HOLD_UPDATE)
    async def release_hold(self, request: ReleaseHoldRequest) -> EarningResult:
        """End the hold now: post the earning (and hold its reserve, if any)."""
        return await self._operate(
            lambda legacy: legacy.release_hold(request),
            lambda: hold_requests.post_earning(self._seller_id, request.order_id),
        )

    @release_hold.validator
    def _validate_release_hold(self, request: ReleaseHoldRequest) -> None:
        self._validate(request.order_id, lambda legacy: legacy.validate_release_hold(request))

    @workflow.update(name=EXTEND_HOLD_UPDATE)
    async def extend_hold(self, request: ExtendHoldRequest) -> EarningResult:
        """Move the hold's end later."""
        return await self._operate(
            lambda legacy: legacy.extend_hold(request),
            lambda: hold_requests.extend_hold(self._seller_id, request),
        )

    @extend_hold.validator
    def _validate_extend_hold(self, request: ExtendHoldRequest) -> None:
        if self._validate(request.order_id, lambda legacy: legacy.validate_extend_hold(request)):
            hold_requests.check_hold_until(request)

    @workflow.update(name=CANCEL_HOLD_UPDATE)
    async def cancel_hold(self, request: CancelHoldRequest) -> EarningResult:
        """Refund during the hold: archive the pending earning and drop the hold."""
        return await self._operate(
            lambda legacy: legacy.cancel_hold(request),
            lambda: hold_requests.cancel_earning(self._seller_id, request.order_id),
        )

    @cancel_hold.validator
    def _validate_cancel_hold(self, request: CancelHoldRequest) -> None:
        self._validate(request.order_id, lambda legacy: legacy.validate_cancel_hold(request))

    @workflow.update(name=ADD_EARNING_UPDATE)
    async def add_earning(self, request: AddEarningRequest) -> EarningResult:
        """Book an order's earning. The first shape booked through this update; the platform
        now books in the API's own transaction, and this stays for a caller of the old API
        (it books the same way, keyed by seller and order)."""
        legacy = self._in_memory()
        if legacy is not None:
            return await legacy.add_earning(request)
        earning = await hold_requests.book_earning(self._seller_id, request, REQUEST_RETRY)
        self._wake = True
        return earning

    @add_earning.validator
    def _validate_add_earning(self, request: AddEarningRequest) -> None:
        # The first shape checks the same.
        hold_requests.check_add_earning(request)

    @workflow.update(name=REFUND_EARNING_UPDATE)
    async def refund_earning(self, request: RefundEarningInput) -> RefundResult:
        """Refund (part of) an order. The first shape refunded holds through this update;
        refunds now run in the refund workflow, and this stays for a caller of the old API."""
        return await self._operate(
            lambda legacy: legacy.refund_earning(request),
            lambda: hold_requests.refund_earning(self._seller_id, request, REQUEST_RETRY),
        )

    @refund_earning.validator
    def _validate_refund_earning(self, request: RefundEarningInput) -> None:
        self._validate(request.order_id, lambda legacy: legacy.validate_refund_earning(request))

    # ------------------------------------------------------------ queries

    @workflow.query(name=STATE_QUERY)
    def state(self) -> HoldsState:
        """When this workflow looks next and the seller's holds as of its last turn (the holds
        themselves: ``GET /v1/sellers/{id}/holds``, from the database)."""
        return self._state

    @workflow.query(name=HOLDS_QUERY)
    def holds(self) -> list[Hold]:
        """The holds a run of the first shape keeps in memory ([] in the database shape)."""
        legacy = self._in_memory()
        return legacy.holds() if legacy is not None else []

    # ------------------------------------------------------------ internals

    async def _operate(
        self,
        in_memory: Callable[[InMemoryHolds], Awaitable[T]],
        activity: Callable[[], Awaitable[T]],
    ) -> T:
        """An operator's request. A run of the first shape handles it ``in_memory``; in the
        database shape the activity checks the hold under its row lock, then a turn runs, so the
        timer and the summary follow what changed."""
        legacy = self._in_memory()
        if legacy is not None:
            return await in_memory(legacy)
        try:
            result = await activity()
        except ActivityError as err:
            error = business_error(err)
            code = _HOLD_CODES.get(str(error.type), error.type)
            raise ApplicationError(
                error.message, *error.details, type=code, non_retryable=True
            ) from err
        self._wake = True
        return result

    def _validate(self, order_id: str, in_memory: Callable[[InMemoryHolds], None]) -> bool:
        """An update's validator (read-only): the first shape's checks for a run of it, else the
        order id's; True if the request's own checks are still to run (the database shape)."""
        legacy = self._legacy
        if legacy is not None:
            in_memory(legacy)
            return False
        check_order_id(order_id)
        return True

    def _continue_as_new_due(self) -> bool:
        return history_too_long(self._history_limit)

    def _publish(self) -> None:
        """Search attribute OpenHolds and the readable details in the UI, when they change."""
        s = self._summary
        timer = self._state.timer_at
        details = (
            f"{s.on_hold_count} earnings on hold ({s.on_hold} minor units), "
            f"{s.in_reserve_count} reserves held ({s.in_reserve}), {self._posted_count} posted"
            + (f"; next look {timer.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if timer else "")
            + (f" (as of {s.as_of.astimezone(UTC):%H:%M:%SZ})" if s.as_of else "")
            + (f"; follows test clock {self._test_clock}" if self._test_clock else "")
        )
        if self._published is not None and self._published == (s.open_holds, details):
            return
        if self._published is None or self._published[0] != s.open_holds:
            workflow.upsert_search_attributes([OPEN_HOLDS.value_set(s.open_holds)])
        workflow.set_current_details(details)
        self._published = (s.open_holds, details)
