"""What both shapes of the seller hold workflow (``seller_holds`` and the first shape,
``seller_holds_v1``) do alike: the activity call behind each request, and the checks of a
request's fields. Each call issues the very command both shapes always issued, so recorded runs
of either shape replay."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.common import REQUEST_RETRY, call_activity, check_minor_units, check_order_id
from workflows.errors import rejected

with workflow.unsafe.imports_passed_through():
    from contracts.holds import (
        BOOK_EARNING,
        CANCEL_EARNING,
        EXTEND_HOLD,
        POST_EARNING,
        AddEarningRequest,
        BookEarningInput,
        EarningResult,
        ExtendHoldInput,
        ExtendHoldRequest,
        OrderEarningInput,
        PostEarningInput,
    )
    from contracts.payouts import REFUND_EARNING, RefundEarningInput, RefundResult


async def post_earning(
    seller_id: str, order_id: str, retry_policy: RetryPolicy = REQUEST_RETRY
) -> EarningResult:
    """End the hold now (workflow time): post the earning, hold its reserve if any."""
    return await call_activity(
        POST_EARNING,
        PostEarningInput(order_id=order_id, at=workflow.now(), seller_id=seller_id),
        EarningResult,
        retry_policy,
    )


async def extend_hold(seller_id: str, request: ExtendHoldRequest) -> EarningResult:
    return await call_activity(
        EXTEND_HOLD,
        ExtendHoldInput(
            order_id=request.order_id, hold_until=request.hold_until, seller_id=seller_id
        ),
        EarningResult,
        REQUEST_RETRY,
    )


async def cancel_earning(seller_id: str, order_id: str) -> EarningResult:
    return await call_activity(
        CANCEL_EARNING,
        OrderEarningInput(order_id=order_id, seller_id=seller_id),
        EarningResult,
        REQUEST_RETRY,
    )


async def book_earning(
    seller_id: str, request: AddEarningRequest, retry_policy: RetryPolicy
) -> EarningResult:
    """Book the order's earning (the hold runs from workflow time)."""
    return await call_activity(
        BOOK_EARNING,
        BookEarningInput(
            seller_id=seller_id,
            order_id=request.order_id,
            amount=request.amount,
            fee=request.fee,
            booked_at=workflow.now(),
            metadata=request.metadata,
        ),
        EarningResult,
        retry_policy,
    )


async def refund_earning(
    seller_id: str, request: RefundEarningInput, retry_policy: RetryPolicy
) -> RefundResult:
    return await call_activity(
        REFUND_EARNING,
        RefundEarningInput(
            refund_id=request.refund_id,
            order_id=request.order_id,
            amount=request.amount,
            metadata=request.metadata,
            seller_id=seller_id,
        ),
        RefundResult,
        retry_policy,
    )


def check_add_earning(request: AddEarningRequest) -> None:
    check_order_id(request.order_id)
    check_minor_units("amount", request.amount, 1)
    check_minor_units("fee", request.fee, 0)
    if request.fee > request.amount:
        raise rejected("fee must not exceed amount", "validation_failed")


def check_hold_until(request: ExtendHoldRequest) -> None:
    if request.hold_until.tzinfo is None:
        raise rejected("hold_until must include a time zone offset", "validation_failed")
