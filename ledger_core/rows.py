"""Rows of the ledger's tables as its types, and the psycopg connection under a SQLAlchemy one."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

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

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


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


@functools.cache
def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def from_row(cls: type[D], row: Row[Any], **values: Any) -> D:
    """A ``cls`` dataclass whose fields are the row's columns of the same names, except those
    given in ``values`` (conversions, fields the row has not)."""
    for name in _field_names(cls):
        if name not in values:
            values[name] = getattr(row, name)
    return cls(**values)


def ledger_from_row(row: Row[Any]) -> Ledger:
    return from_row(Ledger, row)


def account_from_row(row: Row[Any], exponent: int, livemode: bool) -> LedgerAccount:
    return from_row(
        LedgerAccount,
        row,
        livemode=livemode,
        normal_balance=NormalBalance(row.normal_balance),
        currency_exponent=exponent,
        totals=RunningTotals(
            row.pending_debits, row.pending_credits, row.posted_debits, row.posted_credits
        ),
    )


def entry_from_row(row: Row[Any]) -> LedgerEntry:
    return from_row(
        LedgerEntry, row, direction=Direction(row.direction), status=TransactionStatus(row.status)
    )


def transaction_from_row(row: Row[Any], entry_rows: Sequence[Row[Any]]) -> LedgerTransaction:
    status = TransactionStatus(row.status)
    entries = tuple(
        from_row(
            LedgerEntry,
            e,
            direction=Direction(e.direction),
            status=status,
            effective_at=row.effective_at,
        )
        for e in entry_rows
    )
    return from_row(LedgerTransaction, row, status=status, entries=entries)
