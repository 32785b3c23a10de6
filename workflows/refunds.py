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

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

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
    from workflows.types import SELLER_ID

REFUND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=PAYOUT_BUSINESS_ERROR_TYPES,
)


def refund_workflow_id(refund_id: str) -> str:
    return f"refund/{refund_id}"


def refund_update_id(refund_id: str) -> str:
    return f"refund:{refund_id}"


@dataclass
class RefundEarningRequest:
    """Refund ``amount`` (gross, minor units; None: all that is left) of an order."""

    refund_id: str
    order_id: str
    amount: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RefundInput:
    refund_id: str
    seller_id: str
    order_id: str
    amount: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@workflow.defn
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
