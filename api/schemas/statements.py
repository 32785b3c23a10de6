"""``/v1/sellers/{id}/statement`` and ``/v1/wallets/{id}/statement``: a statement of the posted
balance over a period (``marketplace.statements``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from api.schemas.common import AsText, ObjectOut, ResponseModel


class StatementPeriodOut(ResponseModel):
    from_date: date = Field(serialization_alias="from", description="The first day (inclusive).")
    to_date: date = Field(serialization_alias="to", description="The last day (inclusive).")
    time_zone: str = Field(description="The IANA zone the days are in.")
    start: datetime = Field(description="The period's first instant: `from` 00:00 in the zone.")
    end: datetime = Field(description="Its end (excluded): the day after `to`, 00:00.")


class StatementLineOut(ResponseModel):
    kind: AsText = Field(
        description="seller: earning, refund, chargeback, reserve, payout, payout_returned, "
        "adjustment; wallet: top_up, spend, spend_refund, transfer_in, transfer_out, expiry, "
        "adjustment (anything written through the ledger API)."
    )
    reference: str = Field(
        description="The order, refund, dispute, payout, top-up, spend, spend refund or "
        "transfer id; an adjustment's external id, else its ledger transaction's id."
    )
    amount: int = Field(description="Signed minor units: + is money to the seller or wallet.")
    balance: int = Field(description="The posted balance after this line.")
    at: datetime = Field(
        description="When the line counts (its statement time): the transaction's effective_at "
        "if it was written posted, the later of effective_at and its posting if it was written "
        "pending."
    )
    effective_at: datetime
    description: str | None
    ledger_entry_id: AsText
    ledger_transaction_id: AsText


class HeldAtCloseOut(ResponseModel):
    kind: AsText = Field(description="reserve, chargeback (an open dispute), payout (in transit).")
    reference: str
    amount: int = Field(description="Signed minor units (negative: held back).")
    since: datetime
    description: str | None
    ledger_entry_id: AsText
    ledger_transaction_id: AsText


class StatementOut(ObjectOut):
    """Opening + the lines' amounts = closing, to the minor unit. ``held_at_close`` is
    informational: pending debits open at the period's end, not part of that arithmetic."""

    object: Literal["statement"] = "statement"
    subject: Literal["seller", "wallet"]
    id: str = Field(description="The seller's or wallet's id.")
    name: str
    currency: str
    currency_exponent: int
    period: StatementPeriodOut
    opening_balance: int = Field(validation_alias="opening", description="Minor units.")
    closing_balance: int = Field(validation_alias="closing", description="Minor units.")
    lines: list[StatementLineOut]
    held_at_close: list[HeldAtCloseOut]
    total_held: int
    generated_at: datetime
    final: bool = Field(
        description="The period ended long enough ago that every write in it has committed: "
        "asked again, the statement is the same (a backdated correction aside)."
    )
    digest: str = Field(
        description="SHA-256 (hex) of the statement's canonical figures (docs: Statements): "
        "equal digests, equal statements."
    )
