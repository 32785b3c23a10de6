"""The dispute (chargeback) workflow (id ``dispute/<dispute id>``).

Opens a pending debit on the seller (activity: available drops, posted does not; the API has
usually written it already, in its own transaction, and the activity finds it), then waits for
the outcome: a ``resolve`` update (or signal) with won or lost, until the deadline; unresolved by
then, the dispute is lost. Won archives the debit, lost posts it. Both activities are idempotent
by dispute id; the API writes an operator's resolution itself and signals it here, and the
database decides a resolution that races the deadline. A dispute of a seller on a test clock
waits for the clock's advance to pass its deadline (``deadline_passed``), not for a timer.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.common import DURABLE_RETRY, REQUEST_RETRY, call_activity
from workflows.errors import business_error

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.disputes import (
        DEADLINE_SIGNAL,
        DISPUTE_WORKFLOW,
        OPEN_DISPUTE,
        OPENED_UPDATE,
        RESOLVE_DISPUTE,
        RESOLVE_SIGNAL,
        RESOLVE_UPDATE,
        STATE_QUERY,
        DisputeInput,
        DisputeResult,
        DisputeState,
        ResolveDisputeInput,
        ResolveDisputeRequest,
    )

OUTCOMES = ("won", "lost")


@workflow.defn(name=DISPUTE_WORKFLOW)
class DisputeWorkflow:
    @workflow.init
    def __init__(self, input: DisputeInput) -> None:
        self._input = input
        self._state = DisputeState(
            dispute_id=input.dispute_id,
            seller_id=input.seller_id,
            status="opening",
            deadline=input.deadline,
        )
        self._failure: ApplicationError | None = None
        self._deadline_passed = False

    @workflow.run
    async def run(self, input: DisputeInput) -> DisputeResult:
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id)])
        workflow.set_current_details(f"opening: {input.amount} minor units, order {input.order_id}")
        try:
            # The workflow's input is the activity's (the same fields).
            dispute = await call_activity(OPEN_DISPUTE, input, DisputeResult, REQUEST_RETRY)
        except ActivityError as err:
            self._failure = business_error(err)
            self._state.status = "failed"
            self._state.error = self._failure.message
            await workflow.wait_condition(workflow.all_handlers_finished)
            # Failing (not completing) lets the same dispute id be opened again once fixed.
            raise self._failure from err
        self._record(dispute)

        if dispute.status == "open":
            workflow.set_current_details(
                f"open: {dispute.amount} minor units held from seller {dispute.seller_id}; "
                f"deadline {input.deadline.isoformat()}"
            )
            remaining = input.deadline - workflow.now()
            if input.test_clock_id is not None:
                # The deadline is in the test clock's time: its advance says when it passed.
                await workflow.wait_condition(
                    lambda: self._state.outcome is not None or self._deadline_passed
                )
            elif self._state.outcome is None and remaining > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._state.outcome is not None,
                        timeout=remaining,
                        timeout_summary="dispute deadline",
                    )
            if self._state.outcome is None:
                self._state.outcome = "lost"
                self._state.resolved_by = "deadline"
            dispute = await call_activity(
                RESOLVE_DISPUTE,
                ResolveDisputeInput(dispute_id=input.dispute_id, outcome=self._state.outcome),
                DisputeResult,
                DURABLE_RETRY,
            )
            if dispute.status in OUTCOMES and dispute.status != self._state.outcome:
                # An operator's resolution reached the database first (as the deadline passed).
                self._state.outcome = dispute.status
                self._state.resolved_by = "operator"
            self._record(dispute)
        workflow.set_current_details(f"{dispute.status} ({self._state.resolved_by or 'earlier'})")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return dispute

    @workflow.update(name=OPENED_UPDATE)
    async def opened(self) -> DisputeResult:
        """Returns the dispute once its pending debit is written (update-with-start uses it to
        answer the caller synchronously)."""
        await workflow.wait_condition(
            lambda: self._state.dispute is not None or self._failure is not None
        )
        if self._failure is not None:
            raise self._failure
        assert self._state.dispute is not None
        return self._state.dispute

    @workflow.update(name=RESOLVE_UPDATE)
    async def resolve(self, request: ResolveDisputeRequest) -> DisputeResult:
        """Decide the outcome; returns the dispute once the ledger reflects it."""
        self._decide(request.outcome)
        await workflow.wait_condition(
            lambda: self._state.status in OUTCOMES or self._failure is not None
        )
        if self._failure is not None:
            raise self._failure
        assert self._state.dispute is not None
        return self._state.dispute

    @resolve.validator
    def _validate_resolve(self, request: ResolveDisputeRequest) -> None:
        if request.outcome not in OUTCOMES:
            raise ApplicationError("outcome must be won or lost", type="validation_failed")
        if self._failure is not None:
            raise ApplicationError(
                f"dispute {self._state.dispute_id!r} could not be opened: {self._failure.message}",
                type="dispute_not_found",
            )
        decided = self._state.outcome
        if decided is not None and decided != request.outcome:
            raise ApplicationError(
                f"dispute {self._state.dispute_id!r} is already resolved as {decided}",
                type="dispute_already_resolved",
            )

    @workflow.signal(name=RESOLVE_SIGNAL)
    def resolve_signal(self, request: ResolveDisputeRequest) -> None:
        """The same as the ``resolve`` update, fire-and-forget (e.g. from a PSP webhook). A
        second, different outcome is ignored."""
        if request.outcome in OUTCOMES and self._state.outcome is None:
            self._decide(request.outcome)

    @workflow.signal(name=DEADLINE_SIGNAL)
    def deadline_passed(self) -> None:
        """The seller's test clock passed the deadline (a test clock's advance): unresolved, the
        dispute is lost, as at a deadline in wall time."""
        self._deadline_passed = True

    @workflow.query(name=STATE_QUERY)
    def state(self) -> DisputeState:
        return self._state

    def _decide(self, outcome: str) -> None:
        if self._state.outcome is None:
            self._state.outcome = outcome
            self._state.resolved_by = "operator"

    def _record(self, dispute: DisputeResult) -> None:
        self._state.dispute = dispute
        self._state.status = dispute.status
        if dispute.status in OUTCOMES and self._state.outcome is None:
            # Resolved before this workflow saw it open (by a request that came first).
            self._state.outcome = dispute.status
