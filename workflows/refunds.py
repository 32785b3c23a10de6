"""Refunds of orders (DESIGN.md, "The seller's money", step 5).

* Still on hold: the seller's hold workflow does it (its ``refund_earning`` update), so the hold
  and the refund never race: the pending earning is archived, the remainder (if any) booked again
  with the same hold end, and the hold dropped when nothing is left.
* Posted: the ``RefundWorkflow`` (id ``refund/<refund id>``) debits the seller (posted; it may
  take the seller below zero).

Both run the same idempotent activity (``refund_earning``, keyed by the refund id), which decides
by the earning's status under a row lock, so even a refund that loses a race with the hold's end
is booked the right way exactly once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.errors import business_error

with workflow.unsafe.imports_passed_through():
    from activities.payout_types import (
        PAYOUT_BUSINESS_ERROR_TYPES,
        REFUND_EARNING,
        RefundEarningInput,
        RefundResult,
    )
    from workflows.payout_types import RefundInput
    from workflows.types import SELLER_ID

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
    async def run(self, input: RefundInput) -> RefundResult:
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id)])
        try:
            result: RefundResult = await workflow.execute_activity(
                REFUND_EARNING,
                RefundEarningInput(
                    refund_id=input.refund_id,
                    order_id=input.order_id,
                    amount=input.amount,
                    metadata=input.metadata,
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
