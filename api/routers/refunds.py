"""``POST /v1/sellers/{id}/earnings/{order_id}/refund``: refund (part of) an order.

Written in the request's own database transaction (``marketplace.Refunds.refund_earning``, under
the earning's row lock, which the hold's release takes too): on hold, the pending earning is
archived (and the rest booked again with the same hold end); posted, the seller is debited (and
may go below zero). Idempotent by refund id: the body's ``refund_id``, else one derived from the
``Idempotency-Key`` (``rf_<hash>``); one of them is required. Errors: 422
``refund_exceeds_earning``, 409 ``refund_conflict``, 404 ``earning_not_found``.
"""

from __future__ import annotations

from fastapi import APIRouter, Header

from api.dependencies import DbConnection
from api.idempotency import key_derived_id
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas.refunds import RefundCreate, RefundOut
from api.scoping import MarketplaceDep, PlatformAccess
from marketplace import EarningNotFound, Refunds, earning_not_found

router = APIRouter(tags=["refunds"], route_class=ApiRoute)


@router.post(
    "/v1/sellers/{seller_id}/earnings/{order_id}/refund",
    status_code=201,
    dependencies=[PlatformAccess],
)
def refund_earning(
    seller_id: str,
    order_id: str,
    body: RefundCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> RefundOut:
    """Refund (part of) the seller's share of an order, in this request's own database
    transaction: committed before the answer, nothing waits for a workflow."""
    refund_id = body.refund_id
    if refund_id is None:
        if not idempotency_key:
            raise Problem(
                422, "refund_id_required", "Send a refund_id or an Idempotency-Key header."
            )
        # The order's earning is the seller's: another seller's share of the same order, refunded
        # with the same key, is another refund.
        refund_id = key_derived_id("rf", seller_id, order_id, idempotency_key)
    try:
        refund = Refunds(market).refund_earning(
            conn,
            refund_id=refund_id,
            seller_id=seller_id,
            order_id=order_id,
            amount=body.amount,
            metadata=dict(body.metadata),
        )
    except EarningNotFound:
        raise earning_not_found(order_id) from None
    return RefundOut.model_validate(refund, from_attributes=True)
