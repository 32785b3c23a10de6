"""``/v1/ledger_transactions`` and ``/v1/ledger_entries``: writing, changing and reversing
transactions (with their balance conditions), and their entries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    Field,
    model_validator,
)

from api.schemas.common import (
    Amount,
    Description,
    ExternalId,
    LockVersion,
    Metadata,
    MetadataKey,
    MetadataValue,
    ObjectOut,
    RequestModel,
    SignedAmount,
)
from ledger_core import (
    BalanceCondition,
    BalanceKind,
    ConditionOp,
    Direction,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
)


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


class LedgerEntryOut(ObjectOut):
    id: uuid.UUID
    object: Literal["ledger_entry"] = "ledger_entry"
    ledger_id: uuid.UUID
    ledger_account_id: uuid.UUID = Field(validation_alias="account_id")
    ledger_transaction_id: uuid.UUID = Field(validation_alias="transaction_id")
    direction: Direction
    amount: int
    status: TransactionStatus
    effective_at: datetime
    created_at: datetime


class LedgerTransactionOut(ObjectOut):
    id: uuid.UUID
    object: Literal["ledger_transaction"] = "ledger_transaction"
    ledger_id: uuid.UUID
    status: TransactionStatus
    effective_at: datetime
    external_id: str | None
    description: str | None
    metadata: dict[str, Any]
    ledger_entries: list[LedgerEntryOut] = Field(validation_alias="entries")
    reverses_ledger_transaction_id: uuid.UUID | None = Field(validation_alias="reverses_id")
    reversed_by_ledger_transaction_id: uuid.UUID | None = Field(validation_alias="reversed_by_id")
    posted_at: datetime | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
