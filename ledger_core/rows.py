"""Rows of the ledger's tables as its types, and the psycopg connection under a SQLAlchemy one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.engine import Row

from ledger_core.types import (
    Direction,
    Ledger,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    NormalBalance,
    RunningTotals,
    TransactionStatus,
)


@dataclass(frozen=True, slots=True)
class AccountMeta:
    """The parts of an account that never change (a trigger refuses it), safe to cache."""

    ledger_id: uuid.UUID
    normal_balance: NormalBalance
    currency: str


def driver(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def ledger_from_row(row: Row[Any]) -> Ledger:
    return Ledger(
        id=row.id,
        name=row.name,
        description=row.description,
        currency=row.currency,
        currency_exponent=row.currency_exponent,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def account_from_row(row: Row[Any], exponent: int) -> LedgerAccount:
    return LedgerAccount(
        id=row.id,
        ledger_id=row.ledger_id,
        name=row.name,
        description=row.description,
        normal_balance=NormalBalance(row.normal_balance),
        currency=row.currency,
        currency_exponent=exponent,
        external_id=row.external_id,
        metadata=row.metadata,
        totals=RunningTotals(
            pending_debits=row.pending_debits,
            pending_credits=row.pending_credits,
            posted_debits=row.posted_debits,
            posted_credits=row.posted_credits,
        ),
        lock_version=row.lock_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def entry_from_row(row: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        transaction_id=row.transaction_id,
        ledger_id=row.ledger_id,
        account_id=row.account_id,
        direction=Direction(row.direction),
        amount=row.amount,
        status=TransactionStatus(row.status),
        effective_at=row.effective_at,
        created_at=row.created_at,
    )


def transaction_from_row(row: Row[Any], entry_rows: Sequence[Row[Any]]) -> LedgerTransaction:
    status = TransactionStatus(row.status)
    entries = tuple(
        LedgerEntry(
            id=e.id,
            transaction_id=e.transaction_id,
            ledger_id=e.ledger_id,
            account_id=e.account_id,
            direction=Direction(e.direction),
            amount=e.amount,
            status=status,
            effective_at=row.effective_at,
            created_at=e.created_at,
        )
        for e in entry_rows
    )
    return LedgerTransaction(
        id=row.id,
        ledger_id=row.ledger_id,
        status=status,
        effective_at=row.effective_at,
        external_id=row.external_id,
        description=row.description,
        metadata=row.metadata,
        entries=entries,
        reverses_id=row.reverses_id,
        reversed_by_id=row.reversed_by_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        posted_at=row.posted_at,
        archived_at=row.archived_at,
    )
