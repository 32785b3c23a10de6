"""Refunds of orders (DESIGN.md, "The seller's money", step 5) by workflow: the ``RefundWorkflow``
(id ``refund/<refund id>``) runs one idempotent activity (``refund_earning``, keyed by the refund
id). Refunds are now written by the API in the request's own database transaction (no request
waits on a workflow to record money); the workflow stays registered for the runs an earlier
release started, which complete as they always did. The activity decides by the earning's status
under its row lock:

* still on hold: the pending earning is archived and the remainder (if any) booked again with the
  same hold end (the hold workflow posts whatever the earning points to when the hold ends);
* posted: a posted debit of the seller, which may take the seller below zero.

The hold's release takes the same row lock, so a refund racing the hold's end is booked the right
way exactly once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.errors import business_error

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.payouts import (
        PAYOUT_BUSINESS_ERROR_TYPES,
        REFUND_EARNING,
        RefundEarningInput,
        RefundResult,
    )

REFUND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=PAYOUT_BUSINESS_ERROR_TYPES,
)


# Not sandboxed: in the sandbox the nested EarningResult of the activity's result failed to
# decode ("name 'datetime' is not defined"); the workflow is one activity call and deterministic.
@workflow.defn(sandboxed=False)
class RefundWorkflow:
    """A refund of a posted earning: one durable, idempotent debit on the seller."""

    @workflow.run
    async def run(self, input: RefundEarningInput) -> RefundResult:
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id or "")])
        try:
            result: RefundResult = await workflow.execute_activity(
                REFUND_EARNING,
                RefundEarningInput(
                    refund_id=input.refund_id,
                    order_id=input.order_id,
                    amount=input.amount,
                    metadata=input.metadata,
                    seller_id=input.seller_id,
                ),
                result_type=RefundResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=REFUND_RETRY,
            )
        except ActivityError as err:
            raise business_error(err) from err
        workflow.set_current_details(
            f"refunded {result.amount} {result.currency} of order {result.order_id} "
            f"({result.kind}; seller {result.seller_amount}, fee {result.fee_amount})"
        )
        return result
