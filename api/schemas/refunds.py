"""``/v1/sellers/{id}/earnings/{order_id}/refund``: a refund of (part of) an order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    Field,
)

from api.schemas.common import AsText, ObjectOut, RequestModel


class RefundCreate(RequestModel):
    amount: int | None = Field(default=None, gt=0, description="Gross; default: all that is left.")
    refund_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")
    metadata: dict[str, Any] = Field(default_factory=dict)


class RefundOut(ObjectOut):
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
    ledger_transaction_id: AsText | None
    earning_status: str
    created_at: datetime
