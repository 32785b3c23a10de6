"""Request and response models (pydantic 2), shaped like Modern Treasury's Ledgers API.

Money is an integer number of minor units everywhere. Amount fields are strict: a float (even
1.0), a string, a boolean, zero or a negative number is a 422 before anything runs. Request
models forbid unknown fields, so a misspelt balance condition is an error, not silently dropped.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ledger_core import (
    Balance,
    BalanceCondition,
    BalanceKind,
    ConditionOp,
    Direction,
    Ledger,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    NewEntry,
    NewLedgerTransaction,
    NormalBalance,
    TransactionStatus,
)

MAX_AMOUNT = 2**63 - 1
T = TypeVar("T")


def _storable_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
Name = Annotated[Text, Field(min_length=1, max_length=255)]
Description = Annotated[Text, Field(max_length=5000)]
ExternalId = Annotated[Text, Field(min_length=1, max_length=255)]
MetadataKey = Annotated[Text, Field(min_length=1, max_length=255)]
MetadataValue = Annotated[Text, Field(max_length=5000)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(max_length=100, description="String keys and string values, as in Modern Treasury."),
]
Amount = Annotated[
    int,
    Field(
        strict=True,
        gt=0,
        le=MAX_AMOUNT,
        description="A positive integer number of minor units (cents for USD).",
    ),
]
SignedAmount = Annotated[int, Field(strict=True, ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
LockVersion = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)]


class RequestModel(BaseModel):
    """The base of every request body model (nested ones too): an unknown field is a 422
    ``validation_error`` naming it in ``unknown_parameters`` (``api.problems``), and the OpenAPI
    schema says ``additionalProperties: false``. Free-form ``dict`` fields (metadata) still take
    any keys. Response models derive from ``BaseModel``."""

    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------- ledgers


class LedgerCreate(RequestModel):
    name: Name
    description: Description | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD")]
    currency_exponent: Annotated[int, Field(strict=True, ge=0, le=18)] | None = Field(
        default=None, description="Minor-unit digits; defaults to the ISO 4217 value."
    )
    metadata: Metadata = Field(default_factory=dict)


class LedgerOut(BaseModel):
    id: uuid.UUID
    object: Literal["ledger"] = "ledger"
    name: str
    description: str | None
    currency: str
    currency_exponent: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, ledger: Ledger) -> LedgerOut:
        return cls(
            id=ledger.id,
            name=ledger.name,
            description=ledger.description,
            currency=ledger.currency,
            currency_exponent=ledger.currency_exponent,
            metadata=ledger.metadata,
            created_at=ledger.created_at,
            updated_at=ledger.updated_at,
        )


# ------------------------------------------------------------------------- accounts


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


# ------------------------------------------------------------------------- transactions


class BalanceBound(RequestModel):
    """Bounds on the account's resulting balance; every given one must hold."""

    gte: SignedAmount | None = None
    gt: SignedAmount | None = None
    lte: SignedAmount | None = None
    lt: SignedAmount | None = None
    eq: SignedAmount | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> BalanceBound:
        if all(v is None for v in (self.gte, self.gt, self.lte, self.lt, self.eq)):
            raise ValueError("give at least one of gte, gt, lte, lt, eq")
        return self

    def conditions(self, balance: BalanceKind) -> list[BalanceCondition]:
        ops = {"gte": self.gte, "gt": self.gt, "lte": self.lte, "lt": self.lt, "eq": self.eq}
        return [
            BalanceCondition(balance=balance, op=ConditionOp(op), amount=amount)
            for op, amount in ops.items()
            if amount is not None
        ]


class LedgerEntryCreate(RequestModel):
    ledger_account_id: uuid.UUID
    direction: Direction
    amount: Amount
    available_balance_amount: BalanceBound | None = Field(
        default=None, description="Require the account's resulting available balance to be ..."
    )
    pending_balance_amount: BalanceBound | None = None
    posted_balance_amount: BalanceBound | None = None
    lock_version: LockVersion | None = Field(
        default=None, description="Write only if the account's lock_version is still this."
    )

    def to_new_entry(self) -> NewEntry:
        conditions: list[BalanceCondition] = []
        for kind, bound in (
            (BalanceKind.AVAILABLE, self.available_balance_amount),
            (BalanceKind.PENDING, self.pending_balance_amount),
            (BalanceKind.POSTED, self.posted_balance_amount),
        ):
            if bound is not None:
                conditions.extend(bound.conditions(kind))
        return NewEntry(
            account_id=self.ledger_account_id,
            direction=self.direction,
            amount=self.amount,
            conditions=tuple(conditions),
            lock_version=self.lock_version,
        )


class LedgerTransactionCreate(RequestModel):
    ledger_id: uuid.UUID
    status: Literal["pending", "posted"] = "posted"
    effective_at: AwareDatetime | None = Field(
        default=None, description="When it counts (ISO 8601 with an offset); defaults to now."
    )
    external_id: ExternalId | None = Field(
        default=None,
        description="Unique per ledger: the same request again returns the same transaction; "
        "a different one is a 409.",
    )
    description: Description | None = None
    metadata: Metadata = Field(default_factory=dict)
    ledger_entries: Annotated[list[LedgerEntryCreate], Field(min_length=2, max_length=1000)]

    def to_new_transaction(self) -> NewLedgerTransaction:
        return NewLedgerTransaction(
            ledger_id=self.ledger_id,
            entries=tuple(e.to_new_entry() for e in self.ledger_entries),
            status=TransactionStatus(self.status),
            effective_at=self.effective_at,
            external_id=self.external_id,
            description=self.description,
            metadata=dict(self.metadata),
        )


class LedgerTransactionUpdate(RequestModel):
    status: Literal["posted", "archived"] | None = Field(
        default=None, description="Post or archive a pending transaction."
    )
    metadata: dict[MetadataKey, MetadataValue | None] | None = Field(
        default=None, description="Keys to set; a key set to null or an empty string is removed."
    )


class LedgerTransactionReversal(RequestModel):
    description: Description | None = None
    metadata: Metadata = Field(default_factory=dict)
    external_id: ExternalId | None = Field(
        default=None, description="Retrying with the same external_id returns the same reversal."
    )
    effective_at: AwareDatetime | None = None


class LedgerEntryOut(BaseModel):
    id: uuid.UUID
    object: Literal["ledger_entry"] = "ledger_entry"
    ledger_id: uuid.UUID
    ledger_account_id: uuid.UUID
    ledger_transaction_id: uuid.UUID
    direction: Direction
    amount: int
    status: TransactionStatus
    effective_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEntryOut:
        return cls(
            id=entry.id,
            ledger_id=entry.ledger_id,
            ledger_account_id=entry.account_id,
            ledger_transaction_id=entry.transaction_id,
            direction=entry.direction,
            amount=entry.amount,
            status=entry.status,
            effective_at=entry.effective_at,
            created_at=entry.created_at,
        )


class LedgerTransactionOut(BaseModel):
    id: uuid.UUID
    object: Literal["ledger_transaction"] = "ledger_transaction"
    ledger_id: uuid.UUID
    status: TransactionStatus
    effective_at: datetime
    external_id: str | None
    description: str | None
    metadata: dict[str, Any]
    ledger_entries: list[LedgerEntryOut]
    reverses_ledger_transaction_id: uuid.UUID | None
    reversed_by_ledger_transaction_id: uuid.UUID | None
    posted_at: datetime | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, txn: LedgerTransaction) -> LedgerTransactionOut:
        return cls(
            id=txn.id,
            ledger_id=txn.ledger_id,
            status=txn.status,
            effective_at=txn.effective_at,
            external_id=txn.external_id,
            description=txn.description,
            metadata=txn.metadata,
            ledger_entries=[LedgerEntryOut.of(e) for e in txn.entries],
            reverses_ledger_transaction_id=txn.reverses_id,
            reversed_by_ledger_transaction_id=txn.reversed_by_id,
            posted_at=txn.posted_at,
            archived_at=txn.archived_at,
            created_at=txn.created_at,
            updated_at=txn.updated_at,
        )


# ------------------------------------------------------------------------- lists


class ListResponse(BaseModel, Generic[T]):
    """A page of a list. ``next_cursor`` goes into ``after_cursor`` for the next page (also sent
    as the ``X-After-Cursor`` header); null on the last page."""

    items: list[T]
    next_cursor: str | None
