"""``/v1/sellers/{id}/payout_account`` and ``/v1/payouts``: where a seller is paid (the account
number masked) and the payouts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import RequestModel
from marketplace import Payout, PayoutAccount


class PayoutAccountIn(RequestModel):
    account_number: str = Field(pattern=r"^[0-9]{4,34}$")
    routing_number: str = Field(pattern=r"^[0-9]{9}$")
    holder_name: str = Field(min_length=1, max_length=200)


class PayoutAccountOut(BaseModel):
    seller_id: str
    object: str = "payout_account"
    account_number_masked: str = Field(description="Only the last 4 digits are ever shown.")
    account_number_last4: str
    routing_number: str
    holder_name: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: PayoutAccount) -> PayoutAccountOut:
        return cls(
            seller_id=account.seller_id,
            account_number_masked=account.masked_account_number,
            account_number_last4=account.last4,
            routing_number=account.routing_number,
            holder_name=account.holder_name,
            created_at=account.created_at,
            updated_at=account.updated_at,
        )


class PayoutCreate(RequestModel):
    amount: int | None = Field(
        default=None, gt=0, description="Minor units; default: the whole available balance."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class PayoutOut(BaseModel):
    id: str
    object: str = "payout"
    seller_id: str
    currency: str
    amount: int
    status: str
    origin: str
    account_number_masked: str
    holder_name: str
    rail_reference: str | None
    failure_code: str | None
    failure_reason: str | None
    ledger_transaction_id: str
    return_transaction_id: str | None
    workflow_id: str
    created_at: datetime
    submitted_at: datetime | None
    paid_at: datetime | None
    failed_at: datetime | None
    returned_at: datetime | None
    cancelled_at: datetime | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, p: Payout) -> PayoutOut:
        return cls(
            id=p.id,
            seller_id=p.seller_id,
            currency=p.currency,
            amount=p.amount,
            status=str(p.status),
            origin=p.origin,
            account_number_masked=p.masked_account_number,
            holder_name=p.holder_name,
            rail_reference=p.rail_reference,
            failure_code=p.failure_code,
            failure_reason=p.failure_reason,
            ledger_transaction_id=str(p.ledger_transaction_id),
            return_transaction_id=str(p.return_transaction_id) if p.return_transaction_id else None,
            workflow_id=f"payout/{p.id}",
            created_at=p.created_at,
            submitted_at=p.submitted_at,
            paid_at=p.paid_at,
            failed_at=p.failed_at,
            returned_at=p.returned_at,
            cancelled_at=p.cancelled_at,
            metadata=p.metadata,
        )
