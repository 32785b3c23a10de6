"""Reading ledger transactions and entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, select
from sqlalchemy.engine import Row

from ledger_core import errors
from ledger_core.checks import (
    check_aware,
    keyset_page,
)
from ledger_core.rows import (
    entry_from_row,
    transaction_from_row,
)
from ledger_core.schema import ledger_entries, ledger_transactions, ledgers
from ledger_core.types import (
    LedgerEntry,
    LedgerTransaction,
    Page,
    TransactionStatus,
)


class TransactionReads:
    """Transactions and entries as they are now, one or a page."""

    def get_transaction(
        self, conn: Connection, transaction_id: uuid.UUID, *, livemode: bool | None = None
    ) -> LedgerTransaction:
        """The transaction; with ``livemode``, one in a ledger of the other mode is not found."""
        query = select(ledger_transactions).where(ledger_transactions.c.id == transaction_id)
        if livemode is not None:
            query = query.where(_in_mode(ledger_transactions.c.ledger_id, livemode))
        row = conn.execute(query).one_or_none()
        if row is None:
            raise errors.NotFound(
                f"ledger transaction {transaction_id} not found", resource="transaction"
            )
        return self._with_entries(conn, [row])[0]

    def get_transaction_by_external_id(
        self, conn: Connection, ledger_id: uuid.UUID, external_id: str
    ) -> LedgerTransaction:
        row = conn.execute(
            select(ledger_transactions).where(
                ledger_transactions.c.ledger_id == ledger_id,
                ledger_transactions.c.external_id == external_id,
            )
        ).one_or_none()
        if row is None:
            raise errors.NotFound(
                f"no transaction with external_id {external_id!r} in ledger {ledger_id}",
                resource="transaction",
            )
        return self._with_entries(conn, [row])[0]

    def list_transactions(
        self,
        conn: Connection,
        *,
        ledger_id: uuid.UUID | None = None,
        account_id: uuid.UUID | None = None,
        status: TransactionStatus | None = None,
        external_id: str | None = None,
        effective_at_gte: datetime | None = None,
        effective_at_lt: datetime | None = None,
        livemode: bool | None = None,
        after: uuid.UUID | None = None,
        limit: int = 25,
    ) -> Page[LedgerTransaction]:
        t = ledger_transactions
        query = select(t)
        if livemode is not None:
            query = query.where(_in_mode(t.c.ledger_id, livemode))
        if ledger_id is not None:
            query = query.where(t.c.ledger_id == ledger_id)
        if account_id is not None:
            query = query.where(
                t.c.id.in_(
                    select(ledger_entries.c.transaction_id).where(
                        ledger_entries.c.account_id == account_id
                    )
                )
            )
        if external_id is not None:
            query = query.where(t.c.external_id == external_id)
        query = _of_transactions(query, status, effective_at_gte, effective_at_lt)
        page = keyset_page(conn, query, t.c.id, after, limit, lambda r: r)
        return Page(items=self._with_entries(conn, page.items), next_after=page.next_after)

    def _with_entries(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[LedgerTransaction]:
        if not rows:
            return []
        e = ledger_entries
        by_txn: dict[uuid.UUID, list[Row[Any]]] = {}
        for entry in conn.execute(
            select(e)
            .where(e.c.transaction_id.in_([r.id for r in rows]))
            .order_by(e.c.transaction_id, e.c.ordinal)
        ):
            by_txn.setdefault(entry.transaction_id, []).append(entry)
        return [transaction_from_row(r, by_txn.get(r.id, [])) for r in rows]

    def list_entries(
        self,
        conn: Connection,
        *,
        ledger_id: uuid.UUID | None = None,
        account_id: uuid.UUID | None = None,
        transaction_id: uuid.UUID | None = None,
        status: TransactionStatus | None = None,
        effective_at_gte: datetime | None = None,
        effective_at_lt: datetime | None = None,
        livemode: bool | None = None,
        after: uuid.UUID | None = None,
        limit: int = 25,
    ) -> Page[LedgerEntry]:
        e, t = ledger_entries, ledger_transactions
        query = select(e, t.c.status, t.c.effective_at).join(t, t.c.id == e.c.transaction_id)
        if livemode is not None:
            query = query.where(_in_mode(e.c.ledger_id, livemode))
        if ledger_id is not None:
            query = query.where(e.c.ledger_id == ledger_id)
        if account_id is not None:
            query = query.where(e.c.account_id == account_id)
        if transaction_id is not None:
            query = query.where(e.c.transaction_id == transaction_id)
        query = _of_transactions(query, status, effective_at_gte, effective_at_lt)
        return keyset_page(conn, query, e.c.id, after, limit, entry_from_row)


def _in_mode(ledger_id: ColumnElement[Any], livemode: bool) -> ColumnElement[bool]:
    """Rows whose ledger (``ledger_id``) is of ``livemode``: transactions and entries take their
    ledger's mode."""
    return ledger_id.in_(select(ledgers.c.id).where(ledgers.c.livemode == livemode))


def _of_transactions(
    query: Select[Any],
    status: TransactionStatus | None,
    effective_at_gte: datetime | None,
    effective_at_lt: datetime | None,
) -> Select[Any]:
    """``query`` (on ``ledger_transactions``, or joined to it) narrowed to the transactions of
    ``status`` effective in [``effective_at_gte``, ``effective_at_lt``); None: no bound."""
    t = ledger_transactions
    if status is not None:
        query = query.where(t.c.status == str(status))
    check_aware(effective_at_gte, "effective_at_gte")
    check_aware(effective_at_lt, "effective_at_lt")
    if effective_at_gte is not None:
        query = query.where(t.c.effective_at >= effective_at_gte)
    if effective_at_lt is not None:
        query = query.where(t.c.effective_at < effective_at_lt)
    return query
