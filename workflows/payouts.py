"""The payout workflow (id ``payout/<payout id>``): DESIGN.md's "The seller's money", step 4.

1. reserve: a pending debit seller -> payouts in transit, only if available stays >= 0 (activity;
   a business error ends the workflow as ``failed`` with nothing reserved, and the ``reserved``
   update, which the API calls with update-with-start, answers with that error). A scheduled
   payout's run has reserved already, in its decision's transaction, and hands the reservation
   over in the input: then there is no reserve activity;
2. submit to the payment rail, the payout id as idempotency key -> ``processing``;
3. wait for the rail's outcome: the ``rail_event`` signal (the rail's webhook); with no word
   after ``poll_seconds`` ask the rail, again with back-off up to ``MAX_POLL_INTERVAL``;
4. paid -> post the debit; failed -> archive it (money available again), reason kept;
5. after paid, wait out the return window for a return: reversal (seller credited back),
   ``returned``, and the seller's payout schedule paused with a note.

A failure of the destination (``DESTINATION_FAILURES``: the account is closed, not found, or its
number invalid) pauses the seller's payout schedule with a note too (the failure activity has
marked the payout account failed): the next run would only fail again. Other failures change
neither.

Operators cancel a payout not yet submitted (``cancel`` update; its validator refuses once
submission began, and the database refuses too, so a payout the rail may have is never
archived). Duplicate webhooks are dropped by event id, and every step is idempotent in the
database, so nothing moves twice. Search attributes ``SellerId`` and ``PayoutStatus`` follow every
change, ``PayoutMethod`` says standard or instant; the ``state`` query tells where it is.

An instant payout (``method`` instant) takes the same steps: its reservation also books its fee
and first asks the rail whether the destination takes instant payments; the rail settles it in
seconds, and it is submitted at once (no batch window; a manual payout never waits for one).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.common import PAYOUT_DURABLE_RETRY, call_activity
from workflows.errors import business_error, rejected

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.payouts import (
        CANCEL_PAYOUT,
        CANCEL_UPDATE,
        GET_RAIL_STATUS,
        MARK_PAYOUT_FAILED,
        MARK_PAYOUT_PAID,
        MARK_PAYOUT_RETURNED,
        PAUSE_PAYOUT_SCHEDULE,
        PAYOUT_BUSINESS_ERROR_TYPES,
        PAYOUT_METHOD,
        PAYOUT_STATUS,
        PAYOUT_WORKFLOW,
        RAIL_EVENT_SIGNAL,
        RESERVE_PAYOUT,
        RESERVED_UPDATE,
        STATE_QUERY,
        SUBMIT_PAYOUT,
        CancelPayoutRequest,
        MarkPayoutInput,
        PauseScheduleInput,
        PayoutIdInput,
        PayoutMethod,
        PayoutResult,
        PayoutStatus,
        PayoutWorkflowInput,
        PayoutWorkflowState,
        RailEventSignal,
        RailStatusResult,
        ReservePayoutInput,
        ReservePayoutResult,
        is_destination_failure,
    )

RAIL_TIMEOUT = timedelta(seconds=60)
MAX_POLL_INTERVAL = timedelta(hours=1)
# During the return window the rail is asked at least this often (a lost return webhook).
RETURN_POLL_INTERVAL = timedelta(days=1)
# Asking the rail is a poll: a failed attempt is simply tried at the next poll.
POLL_RETRY = RetryPolicy(maximum_attempts=3, non_retryable_error_types=PAYOUT_BUSINESS_ERROR_TYPES)

RESERVING = "reserving"  # before the reservation is written (shown by the state query only)
# Runs started with this marker take a scheduled run's reservation instead of reserving.
RESERVED_BY_RUN = "reserved-by-payout-run"
# Runs started with this marker pause the seller's schedule after a failure of the destination.
PAUSE_ON_DESTINATION_FAILURE = "pause-on-destination-failure"
# Runs started with this marker set the PayoutMethod search attribute themselves.
PAYOUT_METHOD_ATTRIBUTE = "payout-method-attribute"


_EVENT_OUTCOME = {
    "payout.paid": "paid",
    "payout.failed": "failed",
    "payout.returned": "returned",
}


@workflow.defn(name=PAYOUT_WORKFLOW)
class PayoutWorkflow:
    @workflow.init
    def __init__(self, input: PayoutWorkflowInput) -> None:
        self._input = input
        self._status = RESERVING
        self._payout: PayoutResult | None = None
        self._error: tuple[str, str] | None = None
        self._events: set[str] = set()
        self._polls = 0
        # What the rail said: paid or failed (with code, reason), and a return after paid.
        self._outcome: tuple[str, str, str] | None = None
        self._return: tuple[str, str] | None = None
        self._submitting = False
        self._cancelling = False
        self._return_window_ends: datetime | None = None
        self._schedule_paused: bool | None = None

    @workflow.run
    async def run(self, input: PayoutWorkflowInput) -> PayoutWorkflowState:
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id)])
        if workflow.patched(PAYOUT_METHOD_ATTRIBUTE):
            workflow.upsert_search_attributes([PAYOUT_METHOD.value_set(str(input.method))])
        self._publish()
        reserved = input.reserved
        # A scheduled run hands over what its decision reserved; runs recorded before that
        # reserved here, and replay so.
        if reserved is None or not workflow.patched(RESERVED_BY_RUN):
            try:
                reserved = await call_activity(
                    RESERVE_PAYOUT,
                    ReservePayoutInput(
                        payout_id=input.payout_id,
                        seller_id=input.seller_id,
                        amount=input.amount,
                        origin=str(input.origin),
                        run_id=input.run_id,
                        metadata=input.metadata,
                        method=str(input.method),
                    ),
                    ReservePayoutResult,
                    PAYOUT_DURABLE_RETRY,
                )
            except ActivityError as err:
                app = business_error(err)
                self._error = (app.type or "workflow_failed", app.message)
                self._set_status(PayoutStatus.FAILED)
                return await self._finish()
        self._payout = reserved.payout
        self._set_status(reserved.payout.status)
        poll = timedelta(seconds=input.poll_seconds or reserved.poll_seconds)
        window = timedelta(
            seconds=input.return_window_seconds
            if input.return_window_seconds is not None
            else reserved.return_window_seconds
        )

        # The cancellation window, if asked for; a cancel in flight is let finish first.
        if input.submit_after_seconds > 0:
            await self._wait(
                lambda: self._status == PayoutStatus.CANCELLED,
                timedelta(seconds=input.submit_after_seconds),
                "submission",
            )
        await workflow.wait_condition(lambda: not self._cancelling)
        if self._status == PayoutStatus.CANCELLED:
            return await self._finish()

        if self._status == PayoutStatus.PENDING:
            self._submitting = True
            try:
                submitted = await call_activity(
                    SUBMIT_PAYOUT,
                    PayoutIdInput(input.payout_id),
                    PayoutResult,
                    PAYOUT_DURABLE_RETRY,
                    timeout=RAIL_TIMEOUT,
                )
                self._payout = submitted
                self._set_status(submitted.status)
            except ActivityError as err:
                # The rail knows this id for another payout: only the rail's status can tell
                # what happens to it, so keep asking.
                workflow.logger.error("payout %s: %s", input.payout_id, business_error(err).message)
        if self._status == PayoutStatus.FAILED:
            await self._pause_if_destination_failed()
            return await self._finish()
        if self._status == PayoutStatus.CANCELLED:
            return await self._finish()

        # Wait for the outcome: the webhook, or the rail's status when it stays silent.
        if self._status not in (PayoutStatus.PAID, PayoutStatus.RETURNED):
            interval = poll
            while self._outcome is None:
                if not await self._wait(lambda: self._outcome is not None, interval, "rail poll"):
                    await self._poll()
                    interval = min(interval * 2, MAX_POLL_INTERVAL)
            kind, code, reason = self._outcome
            if kind == "failed":
                await self._settle(
                    MARK_PAYOUT_FAILED, MarkPayoutInput(input.payout_id, code, reason)
                )
                await self._pause_if_destination_failed()
                return await self._finish()
            await self._settle(MARK_PAYOUT_PAID, PayoutIdInput(input.payout_id))

        # Paid: a return may still come, for the return window.
        if self._status == PayoutStatus.PAID:
            ends = workflow.now() + window
            self._return_window_ends = ends
            while self._return is None and workflow.now() < ends:
                left = ends - workflow.now()
                if not await self._wait(
                    lambda: self._return is not None,
                    min(left, RETURN_POLL_INTERVAL),
                    "return window",
                ):
                    await self._poll()
            if self._return is not None:
                code, reason = self._return
                await self._settle(
                    MARK_PAYOUT_RETURNED, MarkPayoutInput(input.payout_id, code, reason)
                )
        if self._status == PayoutStatus.RETURNED:
            self._schedule_paused = await call_activity(
                PAUSE_PAYOUT_SCHEDULE,
                PauseScheduleInput(
                    seller_id=input.seller_id,
                    note=f"payout {input.payout_id} was returned by the bank "
                    f"({self._payout.failure_code if self._payout else 'returned'}); fix the "
                    "payout account, then resume",
                ),
                bool,
                PAYOUT_DURABLE_RETRY,
            )
        return await self._finish()

    # ------------------------------------------------------------ updates, signals, queries

    @workflow.update(name=RESERVED_UPDATE)
    async def reserved(self) -> PayoutResult:
        """The reserved payout, once its money is reserved; or the business error why nothing
        was (nothing_to_pay, payout_account_missing, insufficient_balance, ...). The API calls it
        with update-with-start, so the client hears synchronously."""
        await workflow.wait_condition(lambda: self._payout is not None or self._error is not None)
        if self._payout is None:
            assert self._error is not None
            raise rejected(self._error[1], self._error[0])
        return self._payout

    @workflow.update(name=CANCEL_UPDATE)
    async def cancel(self, request: CancelPayoutRequest) -> PayoutResult:
        """Cancel a payout not yet submitted: archive its debit (money available again)."""
        self._cancelling = True
        try:
            await workflow.wait_condition(
                lambda: self._payout is not None or self._error is not None
            )
            if self._payout is None or self._status == PayoutStatus.FAILED:
                raise rejected(
                    f"payout {self._input.payout_id!r} reserved nothing; nothing to cancel",
                    "invalid_payout_state",
                )
            if self._status == PayoutStatus.CANCELLED:
                return self._payout
            try:
                cancelled = await call_activity(
                    CANCEL_PAYOUT,
                    PayoutIdInput(self._input.payout_id),
                    PayoutResult,
                    PAYOUT_DURABLE_RETRY,
                )
            except ActivityError as err:
                raise business_error(err) from err
            self._payout = cancelled
            self._set_status(cancelled.status)
            return cancelled
        finally:
            self._cancelling = False

    @cancel.validator
    def _validate_cancel(self, request: CancelPayoutRequest) -> None:
        if self._submitting or self._status not in (RESERVING, PayoutStatus.PENDING, "cancelled"):
            raise rejected(
                f"payout {self._input.payout_id!r} is {self._status} and was already submitted "
                "to the rail; only a payout not yet submitted is cancelled",
                "invalid_payout_state",
            )

    @workflow.signal(name=RAIL_EVENT_SIGNAL)
    def rail_event(self, event: RailEventSignal) -> None:
        """A rail webhook event. The same event twice (same id) counts once."""
        if event.event_id in self._events or event.payout_id != self._input.payout_id:
            return
        self._events.add(event.event_id)
        kind = _EVENT_OUTCOME.get(event.type)
        if kind is not None:
            self._learn(kind, event.code, event.reason)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> PayoutWorkflowState:
        return PayoutWorkflowState(
            payout_id=self._input.payout_id,
            seller_id=self._input.seller_id,
            status=self._status,
            payout=self._payout,
            error_code=self._error[0] if self._error else None,
            error_message=self._error[1] if self._error else None,
            rail_events=len(self._events),
            rail_polls=self._polls,
            return_window_ends=self._return_window_ends,
            schedule_paused=self._schedule_paused,
        )

    # ------------------------------------------------------------ internals

    def _learn(self, kind: str, code: str | None, reason: str | None) -> None:
        """What the rail says (webhook or poll): paid, failed, or returned (which implies paid)."""
        if kind == "failed":
            if self._outcome is None:
                self._outcome = (
                    "failed",
                    code or "failed",
                    reason or "The rail failed the payout.",
                )
        elif kind in ("paid", "returned"):
            if self._outcome is None:
                self._outcome = ("paid", "", "")
            if kind == "returned" and self._return is None and self._outcome[0] == "paid":
                self._return = (code or "returned", reason or "The bank returned the payout.")

    async def _poll(self) -> None:
        self._polls += 1
        try:
            status = await call_activity(
                GET_RAIL_STATUS,
                PayoutIdInput(self._input.payout_id),
                RailStatusResult,
                POLL_RETRY,
                timeout=RAIL_TIMEOUT,
            )
        except ActivityError as err:
            workflow.logger.warning("rail status poll failed: %s", err)
            return
        if status.status in ("paid", "failed", "returned"):
            self._learn(status.status, status.code, status.reason)

    async def _pause_if_destination_failed(self) -> None:
        """After a failure of the destination, pause the seller's payout schedule with a note
        (the failure activity marked the payout account failed). Runs recorded before this
        replay without it."""
        code = self._payout.failure_code if self._payout else None
        if not is_destination_failure(code) or not workflow.patched(PAUSE_ON_DESTINATION_FAILURE):
            return
        self._schedule_paused = await call_activity(
            PAUSE_PAYOUT_SCHEDULE,
            PauseScheduleInput(
                seller_id=self._input.seller_id,
                note=f"payout {self._input.payout_id} failed: {code}; set a new payout account, "
                "then resume",
            ),
            bool,
            PAYOUT_DURABLE_RETRY,
        )

    async def _settle(self, activity: str, arg: object) -> None:
        result = await call_activity(activity, arg, PayoutResult, PAYOUT_DURABLE_RETRY)
        self._payout = result
        self._set_status(result.status)

    @staticmethod
    async def _wait(condition: object, timeout: timedelta, summary: str) -> bool:
        """True if ``condition`` came true within ``timeout``, False on the timeout."""
        try:
            await workflow.wait_condition(
                condition,  # type: ignore[arg-type]
                timeout=timeout,
                timeout_summary=summary,
            )
        except TimeoutError:
            return False
        return True

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self._publish()

    def _publish(self) -> None:
        status = PayoutStatus.PENDING if self._status == RESERVING else self._status
        workflow.upsert_search_attributes([PAYOUT_STATUS.value_set(str(status))])
        amount = f"{self._payout.amount} {self._payout.currency}" if self._payout else "—"
        detail = f"{self._status}: {amount} to seller {self._input.seller_id}"
        if self._input.method != PayoutMethod.STANDARD:
            fee = f", fee {self._payout.fee}" if self._payout else ""
            detail += f" ({self._input.method}{fee})"
        if self._payout and self._payout.failure_code:
            detail += f" ({self._payout.failure_code}: {self._payout.failure_reason})"
        if self._error:
            detail += f"; nothing reserved: {self._error[0]}"
        workflow.set_current_details(detail)

    async def _finish(self) -> PayoutWorkflowState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()
