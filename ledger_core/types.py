"""Domain types of the ledger: what callers pass in and what they get back."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class NormalBalance(enum.StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


class Direction(enum.StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class TransactionStatus(enum.StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    ARCHIVED = "archived"


class BalanceKind(enum.StrEnum):
    AVAILABLE = "available"
    PENDING = "pending"
    POSTED = "posted"


class ConditionOp(enum.StrEnum):
    GTE = "gte"
    GT = "gt"
    LTE = "lte"
    LT = "lt"
    EQ = "eq"


@dataclass(frozen=True, slots=True)
class BalanceCondition:
    """The resulting ``balance`` of the entry's account must be ``op`` ``amount``."""

    balance: BalanceKind
    op: ConditionOp
    amount: int


@dataclass(frozen=True, slots=True)
class NewEntry:
    account_id: uuid.UUID
    direction: Direction
    amount: int
    conditions: tuple[BalanceCondition, ...] = ()
    lock_version: int | None = None


@dataclass(frozen=True, slots=True)
class NewLedgerTransaction:
    ledger_id: uuid.UUID
    entries: tuple[NewEntry, ...]
    status: TransactionStatus = TransactionStatus.POSTED
    effective_at: datetime | None = None
    external_id: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ledger:
    id: uuid.UUID
    name: str
    description: str | None
    currency: str
    currency_exponent: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    livemode: bool = True
    """False: a test ledger (its accounts, transactions and entries are test money)."""


@dataclass(frozen=True, slots=True)
class Balance:
    """One balance view: ``amount`` is credits - debits for a credit-normal account, else the
    reverse."""

    credits: int
    debits: int
    amount: int


@dataclass(frozen=True, slots=True)
class Balances:
    pending: Balance
    posted: Balance
    available: Balance

    def of(self, kind: BalanceKind) -> Balance:
        return {"pending": self.pending, "posted": self.posted, "available": self.available}[kind]


@dataclass(frozen=True, slots=True)
class RunningTotals:
    """Sums of the account's non-archived entries by status and direction."""

    pending_debits: int = 0
    pending_credits: int = 0
    posted_debits: int = 0
    posted_credits: int = 0

    def balances(self, normal: NormalBalance) -> Balances:
        """The three views of DESIGN.md, for a credit- or debit-normal account."""
        pd, pc = self.pending_debits, self.pending_credits
        sd, sc = self.posted_debits, self.posted_credits
        if normal is NormalBalance.CREDIT:
            return Balances(
                pending=Balance(credits=pc + sc, debits=pd + sd, amount=(pc + sc) - (pd + sd)),
                posted=Balance(credits=sc, debits=sd, amount=sc - sd),
                available=Balance(credits=sc, debits=pd + sd, amount=sc - (pd + sd)),
            )
        return Balances(
            pending=Balance(credits=pc + sc, debits=pd + sd, amount=(pd + sd) - (pc + sc)),
            posted=Balance(credits=sc, debits=sd, amount=sd - sc),
            available=Balance(credits=pc + sc, debits=sd, amount=sd - (pc + sc)),
        )


@dataclass(frozen=True, slots=True)
class LedgerAccount:
    id: uuid.UUID
    ledger_id: uuid.UUID
    name: str
    description: str | None
    normal_balance: NormalBalance
    currency: str
    currency_exponent: int
    external_id: str | None
    metadata: dict[str, Any]
    totals: RunningTotals
    lock_version: int
    created_at: datetime
    updated_at: datetime
    livemode: bool = True
    """Its ledger's mode."""

    @property
    def balances(self) -> Balances:
        return self.totals.balances(self.normal_balance)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: uuid.UUID
    transaction_id: uuid.UUID
    ledger_id: uuid.UUID
    account_id: uuid.UUID
    direction: Direction
    amount: int
    status: TransactionStatus
    effective_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerTransaction:
    id: uuid.UUID
    ledger_id: uuid.UUID
    status: TransactionStatus
    effective_at: datetime
    external_id: str | None
    description: str | None
    metadata: dict[str, Any]
    entries: tuple[LedgerEntry, ...]
    reverses_id: uuid.UUID | None
    reversed_by_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    posted_at: datetime | None
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of a list ordered by id; ``next_after`` is the id to continue after, if any."""

    items: list[T]
    next_after: uuid.UUID | None
