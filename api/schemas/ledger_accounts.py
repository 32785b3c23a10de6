"""``/v1/ledger_accounts``: an account with its three balances."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from api.schemas.common import (
    Attributes,
    Description,
    ExternalId,
    Metadata,
    Name,
    ObjectOut,
    RequestModel,
    ResponseModel,
)
from ledger_core import NormalBalance


class LedgerAccountCreate(RequestModel):
    ledger_id: uuid.UUID
    name: Name
    description: Description | None = None
    normal_balance: NormalBalance
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="Optional; must be the ledger's currency."
    )
    external_id: ExternalId | None = Field(
        default=None,
        description="Unique per ledger. Creating again with the same attributes returns the "
        "existing account; with different ones it is a 409.",
    )
    metadata: Metadata = Field(default_factory=dict)


class BalanceOut(ResponseModel):
    credits: int
    debits: int
    amount: int
    currency: str
    currency_exponent: int


class AccountBalancesOut(ResponseModel):
    pending_balance: BalanceOut
    posted_balance: BalanceOut
    available_balance: BalanceOut
    as_of: datetime | None = Field(
        description="The effective_at instant these balances are as of; null for now."
    )


class LedgerAccountOut(ObjectOut):
    id: uuid.UUID
    object: Literal["ledger_account"] = "ledger_account"
    ledger_id: uuid.UUID
    name: str
    description: str | None
    normal_balance: NormalBalance
    currency: str
    currency_exponent: int
    external_id: str | None
    metadata: dict[str, Any]
    lock_version: int
    balances: AccountBalancesOut
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        """The ledger's balances carry no currency: shown with the account's. The instant they
        are as of is the request's (``context={"as_of": ...}``)."""
        money = {"currency": data.currency, "currency_exponent": data.currency_exponent}
        balances = data.balances
        return Attributes(
            data,
            balances={
                "pending_balance": Attributes(balances.pending, **money),
                "posted_balance": Attributes(balances.posted, **money),
                "available_balance": Attributes(balances.available, **money),
                "as_of": context.get("as_of"),
            },
        )
