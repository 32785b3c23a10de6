"""``/v1/sellers/{id}/payout_account`` and ``/v1/payouts``: where a seller is paid (the account
number masked) and the payouts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from api.schemas.common import AsText, Attributes, ObjectOut, RequestModel


class PayoutAccountIn(RequestModel):
    account_number: str = Field(pattern=r"^[0-9]{4,34}$")
    routing_number: str = Field(pattern=r"^[0-9]{9}$")
    holder_name: str = Field(min_length=1, max_length=200)


class PayoutAccountOut(ObjectOut):
    seller_id: str
    object: str = "payout_account"
    account_number_masked: str = Field(
        validation_alias="masked_account_number",
        description="Only the last 4 digits are ever shown.",
    )
    account_number_last4: str = Field(validation_alias="last4")
    routing_number: str
    holder_name: str
    status: str = Field(
        description="active, or failed: a payout to it failed because of the destination "
        "(closed, not found, an invalid number); it is not paid until a new account is set."
    )
    failure_code: str | None = Field(description="failed: the rail's code (account_closed, ...).")
    failed_payout_id: str | None = Field(description="failed: the payout that failed.")
    failed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PayoutCreate(RequestModel):
    amount: int | None = Field(
        default=None,
        gt=0,
        description="Minor units; default: the whole available balance (instant: the largest "
        "payout whose amount and fee fit in it, within the day's instant limit).",
    )
    method: Literal["standard", "instant"] = Field(
        default="standard",
        description="standard: the batch rail (days). instant: a real-time rail (seconds, any "
        "day, any hour) for a fee the seller pays on top of the amount.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class PayoutOut(ObjectOut):
    id: str
    object: str = "payout"
    seller_id: str
    currency: str
    amount: int
    status: AsText
    origin: str
    method: str = Field(description="standard | instant")
    fee: int = Field(description="Instant: the fee (minor units), debited on top of amount.")
    account_number_masked: str = Field(validation_alias="masked_account_number")
    holder_name: str
    rail_reference: str | None
    failure_code: str | None
    failure_reason: str | None
    ledger_transaction_id: AsText
    return_transaction_id: AsText | None
    workflow_id: str
    created_at: datetime
    submitted_at: datetime | None
    paid_at: datetime | None
    failed_at: datetime | None
    returned_at: datetime | None
    cancelled_at: datetime | None
    metadata: dict[str, Any]

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        return Attributes(data, workflow_id=f"payout/{data.id}")
