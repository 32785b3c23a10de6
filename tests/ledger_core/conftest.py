"""Fixtures and helpers for the ledger_core tests: a fresh ledger per test (the ledger tables
refuse DELETE and TRUNCATE by design, so tests never clean up; they only ever look at their own
ledger), short-hands to build entries and transactions, and a snapshot of everything a ledger
holds, to prove that a failed write left nothing behind."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger_core import (
    BalanceCondition,
    BalanceKind,
    ConditionOp,
    Direction,
    Ledger,
    LedgerAccount,
    LedgerService,
    LedgerTransaction,
    NewEntry,
    NewLedgerTransaction,
    NormalBalance,
    TransactionStatus,
)

POSTED = TransactionStatus.POSTED
PENDING = TransactionStatus.PENDING
ARCHIVED = TransactionStatus.ARCHIVED


def entry(
    direction: Direction,
    account: LedgerAccount | uuid.UUID,
    amount: int,
    *conditions: BalanceCondition,
    lock_version: int | None = None,
) -> NewEntry:
    account_id = account if isinstance(account, uuid.UUID) else account.id
    return NewEntry(account_id, direction, amount, tuple(conditions), lock_version)


debit = functools.partial(entry, Direction.DEBIT)
credit = functools.partial(entry, Direction.CREDIT)


def cond(balance: str, op: str, amount: int) -> BalanceCondition:
    return BalanceCondition(BalanceKind(balance), ConditionOp(op), amount)


@dataclass(frozen=True)
class Snapshot:
    """Everything a ledger holds that a write could change."""

    accounts: dict[uuid.UUID, tuple[int, int, int, int, int]]
    transactions: dict[uuid.UUID, tuple[str, Any, uuid.UUID | None]]
    entries: frozenset[uuid.UUID]


def snapshot(engine: Engine, ledger_id: uuid.UUID) -> Snapshot:
    with engine.connect() as conn:
        accounts = {
            r.id: (
                r.pending_debits,
                r.pending_credits,
                r.posted_debits,
                r.posted_credits,
                r.lock_version,
            )
            for r in conn.execute(
                text("SELECT * FROM ledger_accounts WHERE ledger_id = :l"), {"l": ledger_id}
            )
        }
        transactions = {
            r.id: (r.status, r.metadata, r.reversed_by_id)
            for r in conn.execute(
                text("SELECT * FROM ledger_transactions WHERE ledger_id = :l"), {"l": ledger_id}
            )
        }
        entries = frozenset(
            conn.execute(
                text("SELECT id FROM ledger_entries WHERE ledger_id = :l"), {"l": ledger_id}
            ).scalars()
        )
    return Snapshot(accounts, transactions, entries)


class Book:
    """A fresh ledger of the test's own, with one-call helpers that each commit."""

    def __init__(self, engine: Engine, service: LedgerService, currency: str = "USD") -> None:
        self.engine = engine
        self.service = service
        with engine.begin() as conn:
            self.ledger: Ledger = service.create_ledger(
                conn, name=f"test {uuid.uuid4()}", currency=currency
            )
        self.id = self.ledger.id

    def account(
        self, normal: NormalBalance | str = NormalBalance.CREDIT, **kw: Any
    ) -> LedgerAccount:
        with self.engine.begin() as conn:
            return self.service.create_account(
                conn,
                ledger_id=self.id,
                name=kw.pop("name", f"account {uuid.uuid4()}"),
                normal_balance=NormalBalance(normal),
                **kw,
            )

    def new(
        self,
        *entries: NewEntry,
        status: TransactionStatus = POSTED,
        effective_at: datetime | None = None,
        external_id: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> NewLedgerTransaction:
        return NewLedgerTransaction(
            ledger_id=self.id,
            entries=tuple(entries),
            status=status,
            effective_at=effective_at,
            external_id=external_id,
            description=description,
            metadata=metadata or {},
        )

    def write(self, *entries: NewEntry, **kw: Any) -> LedgerTransaction:
        new = self.new(*entries, **kw)
        with self.engine.begin() as conn:
            return self.service.create_transaction(conn, new)

    def create(self, new: NewLedgerTransaction) -> LedgerTransaction:
        with self.engine.begin() as conn:
            return self.service.create_transaction(conn, new)

    def post(self, txn: LedgerTransaction | uuid.UUID) -> LedgerTransaction:
        with self.engine.begin() as conn:
            return self.service.post_transaction(conn, _id(txn))

    def archive(self, txn: LedgerTransaction | uuid.UUID) -> LedgerTransaction:
        with self.engine.begin() as conn:
            return self.service.archive_transaction(conn, _id(txn))

    def reverse(self, txn: LedgerTransaction | uuid.UUID, **kw: Any) -> LedgerTransaction:
        with self.engine.begin() as conn:
            return self.service.reverse_transaction(conn, _id(txn), **kw)

    def get(
        self, account: LedgerAccount | uuid.UUID, as_of: datetime | None = None
    ) -> LedgerAccount:
        with self.engine.connect() as conn:
            return self.service.get_account(conn, _id(account), as_of=as_of)

    def txn(self, txn: LedgerTransaction | uuid.UUID) -> LedgerTransaction:
        with self.engine.connect() as conn:
            return self.service.get_transaction(conn, _id(txn))

    def snapshot(self) -> Snapshot:
        return snapshot(self.engine, self.id)


def _id(obj: Any) -> uuid.UUID:
    return obj if isinstance(obj, uuid.UUID) else obj.id


def triple(account: LedgerAccount, kind: str) -> tuple[int, int, int]:
    """(credits, debits, amount) of one balance view."""
    b = account.balances.of(BalanceKind(kind))
    return (b.credits, b.debits, b.amount)


@pytest.fixture
def book(engine: Engine, ledger_service: LedgerService) -> Book:
    return Book(engine, ledger_service)


@pytest.fixture
def make_book(engine: Engine, ledger_service: LedgerService) -> Iterator[Callable[..., Book]]:
    yield lambda currency="USD": Book(engine, ledger_service, currency)
