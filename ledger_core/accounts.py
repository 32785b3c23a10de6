"""Ledgers and their accounts: creation, reads (balances now or as of an instant), metadata."""

from __future__ import annotations

import dataclasses
import threading
import uuid
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ledger_core import errors
from ledger_core.checks import (
    check_aware,
    keyset_page,
    merge_metadata,
    utc_now,
)
from ledger_core.currencies import resolve_exponent
from ledger_core.ids import uuid7
from ledger_core.rows import (
    AccountMeta,
    account_from_row,
    ledger_from_row,
)
from ledger_core.schema import ledger_accounts, ledger_entries, ledger_transactions, ledgers
from ledger_core.types import (
    Ledger,
    LedgerAccount,
    NormalBalance,
    Page,
    RunningTotals,
)

# A hot read, built once (a statement built per call costs more than the read's round trip).
_ACCOUNT_BY_ID = (
    select(ledger_accounts, ledgers.c.currency_exponent, ledgers.c.livemode)
    .join(ledgers, ledgers.c.id == ledger_accounts.c.ledger_id)
    .where(ledger_accounts.c.id == bindparam("account_id"))
)


class LedgerAccounts:
    """The ledger's ledgers and accounts; it caches only the immutable parts of accounts."""

    def __init__(self) -> None:
        self._accounts: dict[uuid.UUID, AccountMeta] = {}
        self._accounts_lock = threading.Lock()
        # Server-side prepared writes, by database connection.
        self._prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[str]] = (
            weakref.WeakKeyDictionary()
        )

    # ---------------------------------------------------------------- ledgers

    def create_ledger(
        self,
        conn: Connection,
        *,
        name: str,
        currency: str,
        currency_exponent: int | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        livemode: bool = True,
    ) -> Ledger:
        """A ledger; ``livemode`` False: a test ledger (test money, apart from the live)."""
        exponent = resolve_exponent(currency, currency_exponent)
        if not name.strip():
            raise errors.ValidationFailed("name must not be empty", field="name")
        now = utc_now()
        row = conn.execute(
            ledgers.insert()
            .values(
                id=uuid7(),
                name=name,
                description=description,
                currency=currency,
                currency_exponent=exponent,
                metadata=metadata or {},
                created_at=now,
                updated_at=now,
                livemode=livemode,
            )
            .returning(*ledgers.c)
        ).one()
        return ledger_from_row(row)

    def get_ledger(
        self, conn: Connection, ledger_id: uuid.UUID, *, livemode: bool | None = None
    ) -> Ledger:
        """The ledger; with ``livemode``, a ledger of the other mode is not found either."""
        row = conn.execute(select(ledgers).where(ledgers.c.id == ledger_id)).one_or_none()
        if row is None or (livemode is not None and row.livemode != livemode):
            raise errors.NotFound(f"ledger {ledger_id} not found", resource="ledger")
        return ledger_from_row(row)

    def list_ledgers(
        self,
        conn: Connection,
        *,
        livemode: bool | None = None,
        after: uuid.UUID | None = None,
        limit: int = 25,
    ) -> Page[Ledger]:
        query = select(ledgers)
        if livemode is not None:
            query = query.where(ledgers.c.livemode == livemode)
        return keyset_page(conn, query, ledgers.c.id, after, limit, ledger_from_row)

    # ---------------------------------------------------------------- accounts

    def create_account(
        self,
        conn: Connection,
        *,
        ledger_id: uuid.UUID,
        name: str,
        normal_balance: NormalBalance,
        currency: str | None = None,
        external_id: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        livemode: bool | None = None,
    ) -> LedgerAccount:
        """Create an account. With an ``external_id`` that exists in the ledger, the same request
        returns the existing account and a different one is an ``IdempotencyConflict``. With
        ``livemode``, a ledger of the other mode is not found."""
        ledger = self.get_ledger(conn, ledger_id, livemode=livemode)
        if currency is not None and currency != ledger.currency:
            raise errors.CurrencyMismatch(
                f"ledger {ledger_id} is in {ledger.currency}; an account in {currency} needs a "
                "ledger of its own",
                ledger_currency=ledger.currency,
                currency=currency,
            )
        if not name.strip():
            raise errors.ValidationFailed("name must not be empty", field="name")
        normal = NormalBalance(normal_balance)
        now = utc_now()
        values = {
            "id": uuid7(),
            "ledger_id": ledger_id,
            "name": name,
            "description": description,
            "normal_balance": str(normal),
            "currency": ledger.currency,
            "external_id": external_id,
            "metadata": metadata or {},
            "created_at": now,
            "updated_at": now,
        }
        row = conn.execute(
            pg_insert(ledger_accounts)
            .values(**values)
            .on_conflict_do_nothing(constraint="uq_ledger_accounts_external_id")
            .returning(*ledger_accounts.c)
        ).one_or_none()
        if row is None:
            existing = self.get_account_by_external_id(conn, ledger_id, cast(str, external_id))
            same = (
                existing.name == name
                and existing.normal_balance == normal
                and existing.description == description
                and existing.metadata == (metadata or {})
            )
            if not same:
                raise errors.IdempotencyConflict(
                    f"account external_id {external_id!r} exists with different attributes",
                    account_id=str(existing.id),
                )
            return existing
        return account_from_row(row, ledger.currency_exponent, ledger.livemode)

    def get_account(
        self,
        conn: Connection,
        account_id: uuid.UUID,
        *,
        as_of: datetime | None = None,
        livemode: bool | None = None,
    ) -> LedgerAccount:
        """The account with O(1) running-total balances, or, with ``as_of``, balances summed
        from the entries effective at or before that instant (current statuses). With
        ``livemode``, an account of a ledger of the other mode is not found."""
        check_aware(as_of, "as_of")
        row = conn.execute(_ACCOUNT_BY_ID, {"account_id": account_id}).one_or_none()
        if row is None or (livemode is not None and row.livemode != livemode):
            raise errors.NotFound(f"ledger account {account_id} not found", resource="account")
        account = account_from_row(row, row.currency_exponent, row.livemode)
        if as_of is None:
            return account
        totals = self._totals_as_of(conn, account_id, as_of)
        return dataclasses.replace(account, totals=totals)

    def get_account_by_external_id(
        self, conn: Connection, ledger_id: uuid.UUID, external_id: str
    ) -> LedgerAccount:
        row = conn.execute(
            select(ledger_accounts, ledgers.c.currency_exponent, ledgers.c.livemode)
            .join(ledgers, ledgers.c.id == ledger_accounts.c.ledger_id)
            .where(
                ledger_accounts.c.ledger_id == ledger_id,
                ledger_accounts.c.external_id == external_id,
            )
        ).one_or_none()
        if row is None:
            raise errors.NotFound(
                f"no account with external_id {external_id!r} in ledger {ledger_id}",
                resource="account",
            )
        return account_from_row(row, row.currency_exponent, row.livemode)

    def list_accounts(
        self,
        conn: Connection,
        *,
        ledger_id: uuid.UUID | None = None,
        external_id: str | None = None,
        livemode: bool | None = None,
        after: uuid.UUID | None = None,
        limit: int = 25,
    ) -> Page[LedgerAccount]:
        query = select(ledger_accounts, ledgers.c.currency_exponent, ledgers.c.livemode).join(
            ledgers, ledgers.c.id == ledger_accounts.c.ledger_id
        )
        if livemode is not None:
            query = query.where(ledgers.c.livemode == livemode)
        if ledger_id is not None:
            query = query.where(ledger_accounts.c.ledger_id == ledger_id)
        if external_id is not None:
            query = query.where(ledger_accounts.c.external_id == external_id)
        return keyset_page(
            conn,
            query,
            ledger_accounts.c.id,
            after,
            limit,
            lambda r: account_from_row(r, r.currency_exponent, r.livemode),
        )

    def update_account_metadata(
        self, conn: Connection, account_id: uuid.UUID, metadata: dict[str, Any]
    ) -> LedgerAccount:
        current = conn.execute(
            select(ledger_accounts.c.metadata)
            .where(ledger_accounts.c.id == account_id)
            .with_for_update()
        ).scalar_one_or_none()
        if current is None:
            raise errors.NotFound(f"ledger account {account_id} not found", resource="account")
        conn.execute(
            ledger_accounts.update()
            .where(ledger_accounts.c.id == account_id)
            .values(metadata=merge_metadata(current, metadata), updated_at=utc_now())
        )
        return self.get_account(conn, account_id)

    def _totals_as_of(
        self, conn: Connection, account_id: uuid.UUID, as_of: datetime
    ) -> RunningTotals:
        e, t = ledger_entries, ledger_transactions

        def total(status: str, direction: str) -> Any:
            return func.coalesce(
                func.sum(e.c.amount).filter(and_(t.c.status == status, e.c.direction == direction)),
                0,
            )

        row = conn.execute(
            select(
                total("pending", "debit"),
                total("pending", "credit"),
                total("posted", "debit"),
                total("posted", "credit"),
            )
            .select_from(e.join(t, t.c.id == e.c.transaction_id))
            .where(e.c.account_id == account_id, t.c.effective_at <= as_of)
        ).one()
        return RunningTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def _account_meta(
        self, conn: Connection, account_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, AccountMeta]:
        wanted = set(account_ids)
        found = {a: m for a in wanted if (m := self._accounts.get(a)) is not None}
        missing = wanted - found.keys()
        if missing:
            rows = conn.execute(
                select(
                    ledger_accounts.c.id,
                    ledger_accounts.c.ledger_id,
                    ledger_accounts.c.normal_balance,
                    ledger_accounts.c.currency,
                ).where(ledger_accounts.c.id.in_(missing))
            ).all()
            with self._accounts_lock:
                if len(self._accounts) > 200_000:
                    self._accounts.clear()
                for row in rows:
                    meta = AccountMeta(
                        row.ledger_id, NormalBalance(row.normal_balance), row.currency
                    )
                    self._accounts[row.id] = meta
                    found[row.id] = meta
            still = missing - found.keys()
            if still:
                raise errors.NotFound(
                    f"ledger account {sorted(str(a) for a in still)[0]} not found",
                    resource="account",
                    account_ids=sorted(str(a) for a in still),
                )
        return found

    # ---------------------------------------------------------------- transactions
