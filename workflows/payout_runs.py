"""The payout-run workflow: what one firing of a seller's payout schedule does (the schedule's
action; ``temporal_calls.schedules`` creates the schedule).

1. An activity decides and records the run (``payout_runs``), idempotent per run id
   ``<seller>:<scheduled time>``: a payout of the seller's available balance when the seller has a
   payout account and the balance is at least the schedule's minimum (and at least 1), otherwise
   a skip with the reason. To start a payout it reserves the money in the same database
   transaction (a pending debit under a ledger balance condition, so a concurrent manual payout
   cannot make the two overdraw the seller): a run recorded as started always has its money
   reserved.
2. For a payout, it starts the payout workflow (``PayoutWorkflow``, by name, as a child with
   ``ParentClosePolicy.ABANDON``), handing it the reservation so that the payout workflow does
   not reserve again, and returns as soon as the child has started: a payout may wait days for
   its outcome, and the schedule's overlap policy (skip) must only cover the decision.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows.common import business_retry, call_activity

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.payout_runs import (
        DECIDE_PAYOUT_RUN,
        PAYOUT_RUN_WORKFLOW,
        SCHEDULED_START_TIME,
        DecidePayoutRunInput,
        PayoutRunInput,
        PayoutRunResult,
        payout_run_id,
    )
    from contracts.payouts import (
        PAYOUT_WORKFLOW,
        PayoutOrigin,
        PayoutWorkflowInput,
        payout_workflow_id,
    )

DECIDE_RETRY = business_retry(timedelta(seconds=30))


@workflow.defn(name=PAYOUT_RUN_WORKFLOW)
class PayoutRunWorkflow:
    @workflow.run
    async def run(self, input: PayoutRunInput) -> PayoutRunResult:
        info = workflow.info()
        # A test clock's run carries its firing's time on the clock.
        scheduled_at = (
            input.scheduled_at
            or info.typed_search_attributes.get(SCHEDULED_START_TIME)
            or info.start_time
        )
        run_id = payout_run_id(input.seller_id, scheduled_at)
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id)])
        decision = await call_activity(
            DECIDE_PAYOUT_RUN,
            DecidePayoutRunInput(
                run_id=run_id,
                seller_id=input.seller_id,
                scheduled_at=scheduled_at,
                minimum_amount=input.spec.minimum_amount,
            ),
            PayoutRunResult,
            DECIDE_RETRY,
        )
        if decision.outcome != "started" or decision.payout_id is None:
            workflow.set_current_details(f"skipped: {decision.reason}")
            return decision
        # Already started: a reset or re-run of the same firing (the payout id is the run's).
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                PAYOUT_WORKFLOW,
                PayoutWorkflowInput(
                    payout_id=decision.payout_id,
                    seller_id=input.seller_id,
                    amount=decision.amount,
                    origin=PayoutOrigin.SCHEDULED,
                    run_id=run_id,
                    reserved=decision.reserved,
                ),
                id=payout_workflow_id(decision.payout_id),
                task_queue=info.task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"Scheduled payout of seller {input.seller_id}",
            )
        workflow.set_current_details(
            f"started payout {decision.payout_id} of {decision.amount} minor units"
        )
        return decision
