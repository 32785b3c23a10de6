"""``/v1/ledger_accounts``: an account with its three balances."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from api.schemas.common import Description, ExternalId, Metadata, Name, RequestModel
from ledger_core import Balance, LedgerAccount, NormalBalance


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


class BalanceOut(BaseModel):
    credits: int
    debits: int
    amount: int
    currency: str
    currency_exponent: int


class AccountBalancesOut(BaseModel):
    pending_balance: BalanceOut
    posted_balance: BalanceOut
    available_balance: BalanceOut
    as_of: datetime | None = Field(
        description="The effective_at instant these balances are as of; null for now."
    )


class LedgerAccountOut(BaseModel):
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
    def of(cls, account: LedgerAccount, *, as_of: datetime | None = None) -> LedgerAccountOut:
        def view(balance: Balance) -> BalanceOut:
            return BalanceOut(
                credits=balance.credits,
                debits=balance.debits,
                amount=balance.amount,
                currency=account.currency,
                currency_exponent=account.currency_exponent,
            )

        balances = account.balances
        return cls(
            id=account.id,
            ledger_id=account.ledger_id,
            name=account.name,
            description=account.description,
            normal_balance=account.normal_balance,
            currency=account.currency,
            currency_exponent=account.currency_exponent,
            external_id=account.external_id,
            metadata=account.metadata,
            lock_version=account.lock_version,
            balances=AccountBalancesOut(
                pending_balance=view(balances.pending),
                posted_balance=view(balances.posted),
                available_balance=view(balances.available),
                as_of=as_of,
            ),
            created_at=account.created_at,
            updated_at=account.updated_at,
        )
