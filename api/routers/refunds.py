"""``POST /v1/sellers/{id}/earnings/{order_id}/refund``: refund (part of) an order.

Written in the request's own database transaction (``marketplace.Refunds.refund_earning``, under
the earning's row lock, which the hold's release takes too): on hold, the pending earning is
archived (and the rest booked again with the same hold end); posted, the seller is debited (and
may go below zero). Idempotent by refund id: the body's ``refund_id``, else one derived from the
``Idempotency-Key`` (``rf_<hash>``); one of them is required. Errors: 422
``refund_exceeds_earning``, 409 ``refund_conflict``, 404 ``earning_not_found``.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field, field_validator

from api.dependencies import DbConnection
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas import RequestModel
from api.scoping import MarketplaceDep, PlatformAccess, earning_not_found
from marketplace import EarningNotFound, Refunds

router = APIRouter(tags=["refunds"], route_class=ApiRoute)


class RefundCreate(RequestModel):
    amount: int | None = Field(default=None, gt=0, description="Gross; default: all that is left.")
    refund_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")
    metadata: dict[str, Any] = Field(default_factory=dict)


class RefundOut(BaseModel):
    id: str
    object: str = "refund"
    order_id: str
    seller_id: str
    currency: str
    amount: int
    fee_amount: int
    seller_amount: int
    kind: str
    status: str
    ledger_transaction_id: str | None
    earning_status: str
    created_at: datetime

    @field_validator("ledger_transaction_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, uuid.UUID) else value


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
        key = f"{seller_id}\n{order_id}\n{idempotency_key}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        refund_id = f"rf_{digest}"
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
