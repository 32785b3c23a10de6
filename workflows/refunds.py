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

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.common import PAYOUT_DURABLE_RETRY, call_activity
from workflows.errors import business_error

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.payouts import REFUND_EARNING, REFUND_WORKFLOW, RefundEarningInput, RefundResult


# Not sandboxed: in the sandbox the nested EarningResult of the activity's result failed to
# decode ("name 'datetime' is not defined"); the workflow is one activity call and deterministic.
@workflow.defn(name=REFUND_WORKFLOW, sandboxed=False)
class RefundWorkflow:
    """A refund of a posted earning: one durable, idempotent debit on the seller."""

    @workflow.run
    async def run(self, input: RefundEarningInput) -> RefundResult:
        # Refund workflows are always started with the seller (only the first shape of the hold
        # workflow's requests name the order alone).
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id or "")])
        try:
            # The input is the activity's input (the same fields).
            result = await call_activity(REFUND_EARNING, input, RefundResult, PAYOUT_DURABLE_RETRY)
        except ActivityError as err:
            raise business_error(err) from err
        workflow.set_current_details(
            f"refunded {result.amount} {result.currency} of order {result.order_id} "
            f"({result.kind}; seller {result.seller_amount}, fee {result.fee_amount})"
        )
        return result
