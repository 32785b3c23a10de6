"""Writing one ledger transaction: validated, written with its entries and balance conditions in
one pipelined round trip, idempotent by external id."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, select

from ledger_core import errors
from ledger_core.accounts import LedgerAccounts
from ledger_core.checks import (
    MAX_AMOUNT,
    check_amount,
    check_aware,
    utc_now,
)
from ledger_core.database_errors import SQLSTATE_FOREIGN_KEY, translate_database_error
from ledger_core.ids import uuid7
from ledger_core.reads import TransactionReads
from ledger_core.rows import (
    driver,
)
from ledger_core.schema import ledger_transactions
from ledger_core.types import (
    BalanceKind,
    ConditionOp,
    Direction,
    LedgerEntry,
    LedgerTransaction,
    NewLedgerTransaction,
    TransactionStatus,
)

_BALANCE_KINDS = frozenset(k.value for k in BalanceKind)
_CONDITION_OPS = frozenset(o.value for o in ConditionOp)

_INSERT_TRANSACTION_HEAD = """
WITH txn AS (
    INSERT INTO ledger_transactions (
        id, ledger_id, status, effective_at, external_id, description, metadata,
        total_amount, request_hash, reverses_id, created_at, updated_at, posted_at
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT ON CONSTRAINT uq_ledger_transactions_external_id DO NOTHING
    RETURNING id, ledger_id, created_at
)
INSERT INTO ledger_entries (id, transaction_id, ledger_id, account_id, direction, amount,
                            ordinal, created_at)
SELECT e.id, txn.id, txn.ledger_id, e.account_id, e.direction, e.amount, e.ordinal, txn.created_at
  FROM txn, (VALUES {rows}) AS e(id, account_id, direction, amount, ordinal)
 ORDER BY e.account_id
"""


@functools.cache
def _insert_transaction_sql(n_entries: int) -> str:
    """The write of a transaction with ``n_entries`` entries, one statement (entries as plain
    VALUES rows: scalar parameters cost the client far less than array parameters).

    The entries go in in account-id order, so the triggers lock account rows in one global
    order and concurrent writers cannot deadlock."""
    rows = ", ".join(
        f"(%s::uuid, %s::uuid, %s::text, %s::bigint, {i}::smallint)" for i in range(n_entries)
    )
    return _INSERT_TRANSACTION_HEAD.format(rows=rows)


# Runs only if this request's row was inserted (an idempotent replay checks nothing).
_CHECK_CONDITIONS = """
SELECT ledger_check_conditions(id, %(conditions)s) FROM ledger_transactions WHERE id = %(id)s
"""
_CHECK_CONDITIONS_POSITIONAL = """
SELECT ledger_check_conditions(id, %s) FROM ledger_transactions WHERE id = %s
"""


@dataclass(frozen=True, slots=True)
class _PreparedWrite:
    """A validated transaction write: its statement, its condition check and its result."""

    sql: str
    params: list[Any]
    check_params: dict[str, Any] | None
    request_hash: str | None
    result: LedgerTransaction


def _request_hash(new: NewLedgerTransaction, reverses_id: uuid.UUID | None) -> str:
    """A stable digest of what the client asked for (not of defaults filled in later)."""
    canonical = {
        "status": str(new.status),
        "effective_at": new.effective_at.isoformat() if new.effective_at else None,
        "description": new.description,
        "metadata": new.metadata,
        "reverses_id": str(reverses_id) if reverses_id else None,
        "entries": [
            [
                str(e.account_id),
                str(e.direction),
                e.amount,
                e.lock_version,
                sorted([str(c.balance), str(c.op), c.amount] for c in e.conditions),
            ]
            for e in new.entries
        ],
    }
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


class TransactionWrites(LedgerAccounts, TransactionReads):
    """The write of one transaction (``create_transaction``, ``write_transaction``)."""

    def create_transaction(
        self,
        conn: Connection,
        new: NewLedgerTransaction,
        *,
        reverses_id: uuid.UUID | None = None,
    ) -> LedgerTransaction:
        """Write a pending or posted transaction, atomically with its balance conditions, in the
        caller's database transaction (one round trip; the caller commits).

        With an ``external_id`` that exists in the ledger: the same request returns the existing
        transaction (in its current state); a different one raises ``IdempotencyConflict``.
        """
        write = self._prepare(conn, new, reverses_id)
        pg = driver(conn)
        with self._translating_errors():
            if write.check_params is not None:
                # One round trip for the write and its check.
                with pg.pipeline():
                    inserted = pg.execute(write.sql, write.params)
                    pg.execute(_CHECK_CONDITIONS, write.check_params)
            else:
                # Without a check, a plain execute costs the client less than a pipeline.
                inserted = pg.execute(write.sql, write.params)
        if inserted.rowcount == 0:
            return self._replay(conn, new, write.request_hash)
        return write.result

    def write_transaction(self, engine: Engine, new: NewLedgerTransaction) -> LedgerTransaction:
        """``create_transaction`` in a database transaction of its own, committed here.

        For a write with nothing else to do in its database transaction (most writes): BEGIN,
        the write, the condition check and COMMIT go to PostgreSQL in one round trip, so the
        account rows it locks are held only while the server works, never across a round trip
        to the client. That is what keeps a hot account (a clearing account every write goes
        through) fast under concurrency."""
        with engine.connect() as conn:
            write = self._prepare(conn, new, None)
            if conn.in_transaction():
                conn.rollback()  # a read for the account cache; the write starts afresh
            pg = driver(conn)
            for attempt in (1, 2):
                try:
                    inserted = self._write_in_one_round_trip(pg, write, len(new.entries))
                    break
                except psycopg.errors.InvalidSqlStatementName:
                    # psycopg deallocates every prepared statement when a connection rolls
                    # back: prepare the write again (once).
                    self._prepared.pop(pg, None)
                    if attempt == 2:
                        raise
            if inserted == 0:
                try:
                    return self._replay(conn, new, write.request_hash)
                finally:
                    conn.rollback()
            return write.result

    def _write_in_one_round_trip(
        self, pg: psycopg.Connection[Any], write: _PreparedWrite, n_entries: int
    ) -> int:
        """BEGIN, the write (a statement prepared once per connection, so the server does not
        plan it again), its check and COMMIT as one simple-protocol message; parameters bound
        by psycopg on the client, safely quoted. Autocommit for the duration, so that psycopg
        sends no BEGIN of its own ahead of it. Returns the number of entries written (0: the
        external_id existed)."""
        name = self._prepared_write(pg, n_entries)
        placeholders = ", ".join(["%s"] * len(write.params))
        script = f"BEGIN;\nEXECUTE {name}({placeholders});\n"
        params = list(write.params)
        if write.check_params is not None:
            script += _CHECK_CONDITIONS_POSITIONAL + ";\n"
            params += (write.check_params["conditions"], write.check_params["id"])
        script += "COMMIT"
        pg.autocommit = True
        try:
            with self._translating_errors(), psycopg.ClientCursor(pg) as cur:
                cur.execute(script, params)
                cur.nextset()  # past BEGIN: the write's own result
                return cur.rowcount
        except BaseException:
            pg.rollback()  # the failed statement left the transaction block aborted
            raise
        finally:
            pg.autocommit = False

    def _prepared_write(self, pg: psycopg.Connection[Any], n_entries: int) -> str:
        """The name of the server-side prepared write for ``n_entries`` on this connection."""
        name = f"ledger_write_{n_entries}"
        prepared = self._prepared.setdefault(pg, set())
        if name not in prepared:
            numbered = _insert_transaction_sql(n_entries)
            for i in range(1, 14 + 4 * n_entries):
                numbered = numbered.replace("%s", f"${i}", 1)
            pg.execute(f"PREPARE {name} AS {numbered}")
            pg.commit()
            prepared.add(name)
        return name

    def _prepare(
        self,
        conn: Connection,
        new: NewLedgerTransaction,
        reverses_id: uuid.UUID | None,
        *,
        txn_id: uuid.UUID | None = None,
    ) -> _PreparedWrite:
        """Validate a new transaction and build its statement and its result."""
        status = self._validate(new)
        metas = self._account_meta(conn, (e.account_id for e in new.entries))
        for entry in new.entries:
            meta = metas[entry.account_id]
            if meta.ledger_id != new.ledger_id:
                self.get_ledger(conn, new.ledger_id)  # an unknown ledger is NotFound
                raise errors.CurrencyMismatch(
                    f"account {entry.account_id} belongs to ledger {meta.ledger_id} "
                    f"({meta.currency}), not to ledger {new.ledger_id}",
                    account_id=str(entry.account_id),
                )

        now = utc_now()
        txn_id = txn_id or uuid7()
        effective_at = new.effective_at or now
        posted_at = now if status is TransactionStatus.POSTED else None
        total = sum(e.amount for e in new.entries if e.direction is Direction.DEBIT)
        # Only an external_id can be replayed, so only then is the request's digest kept.
        request_hash = _request_hash(new, reverses_id) if new.external_id is not None else None
        entry_ids = [uuid7() for _ in new.entries]
        conditions = [
            {
                "account_id": str(e.account_id),
                "balance": str(c.balance),
                "op": str(c.op),
                "amount": c.amount,
            }
            for e in new.entries
            for c in e.conditions
        ] + [
            {"account_id": str(e.account_id), "lock_version": e.lock_version}
            for e in new.entries
            if e.lock_version is not None
        ]
        params: list[Any] = [
            txn_id,
            new.ledger_id,
            str(status),
            effective_at,
            new.external_id,
            new.description,
            Jsonb(new.metadata),
            total,
            request_hash,
            reverses_id,
            now,
            now,
            posted_at,
        ]
        for entry_id, e in zip(entry_ids, new.entries, strict=True):
            params += (entry_id, e.account_id, str(e.direction), e.amount)

        result = LedgerTransaction(
            id=txn_id,
            ledger_id=new.ledger_id,
            status=status,
            effective_at=effective_at,
            external_id=new.external_id,
            description=new.description,
            metadata=dict(new.metadata),
            entries=tuple(
                LedgerEntry(
                    id=entry_id,
                    transaction_id=txn_id,
                    ledger_id=new.ledger_id,
                    account_id=e.account_id,
                    direction=e.direction,
                    amount=e.amount,
                    status=status,
                    effective_at=effective_at,
                    created_at=now,
                )
                for entry_id, e in zip(entry_ids, new.entries, strict=True)
            ),
            reverses_id=reverses_id,
            reversed_by_id=None,
            created_at=now,
            updated_at=now,
            posted_at=posted_at,
            archived_at=None,
        )
        return _PreparedWrite(
            sql=_insert_transaction_sql(len(new.entries)),
            params=params,
            check_params=({"conditions": Jsonb(conditions), "id": txn_id} if conditions else None),
            request_hash=request_hash,
            result=result,
        )

    @contextlib.contextmanager
    def _translating_errors(self) -> Iterator[None]:
        """Database errors raised by the schema's own checks, as domain errors."""
        try:
            yield
        except psycopg.Error as exc:
            if exc.sqlstate == SQLSTATE_FOREIGN_KEY:
                # An account cached here was deleted (only possible while it had no entries).
                with self._accounts_lock:
                    self._accounts.clear()
                raise errors.NotFound(
                    "a ledger account of this transaction no longer exists", resource="account"
                ) from exc
            domain = translate_database_error(exc)
            if domain is not None:
                raise domain from exc
            raise

    def _replay(
        self, conn: Connection, new: NewLedgerTransaction, request_hash: str | None
    ) -> LedgerTransaction:
        """The external_id exists: an idempotent replay, or a conflicting request."""
        existing = self.get_transaction_by_external_id(
            conn, new.ledger_id, cast(str, new.external_id)
        )
        stored = conn.execute(
            select(ledger_transactions.c.request_hash).where(
                ledger_transactions.c.id == existing.id
            )
        ).scalar_one()
        if stored != request_hash:
            raise errors.IdempotencyConflict(
                f"external_id {new.external_id!r} was used for a different transaction",
                transaction_id=str(existing.id),
            )
        return existing

    @staticmethod
    def _validate(new: NewLedgerTransaction) -> TransactionStatus:
        try:
            status = TransactionStatus(new.status)
        except ValueError:
            raise errors.ValidationFailed(
                "status must be pending or posted", field="status"
            ) from None
        if status is TransactionStatus.ARCHIVED:
            raise errors.ValidationFailed(
                "a transaction is created pending or posted, never archived", field="status"
            )
        check_aware(new.effective_at, "effective_at")
        if len(new.entries) < 2:
            raise errors.ValidationFailed(
                "a ledger transaction needs at least two entries", field="ledger_entries"
            )
        if len(new.entries) > 1000:
            raise errors.ValidationFailed(
                "a ledger transaction has at most 1000 entries", field="ledger_entries"
            )
        debits = credits = 0
        for i, entry in enumerate(new.entries):
            check_amount(entry.amount, f"ledger_entries[{i}].amount")
            if entry.direction is Direction.DEBIT:
                debits += entry.amount
            elif entry.direction is Direction.CREDIT:
                credits += entry.amount
            else:
                raise errors.ValidationFailed(
                    "direction must be debit or credit", field=f"ledger_entries[{i}].direction"
                )
            for condition in entry.conditions:
                if (
                    isinstance(condition.amount, bool)
                    or not isinstance(condition.amount, int)
                    or not -MAX_AMOUNT - 1 <= condition.amount <= MAX_AMOUNT
                ):
                    raise errors.ValidationFailed(
                        "a balance condition's amount must be an integer within BIGINT",
                        field=f"ledger_entries[{i}]",
                    )
                if condition.balance not in _BALANCE_KINDS or condition.op not in _CONDITION_OPS:
                    raise errors.ValidationFailed(
                        "a balance condition is on available, pending or posted, with one of "
                        "gte, gt, lte, lt, eq",
                        field=f"ledger_entries[{i}]",
                    )
            if entry.lock_version is not None and (
                isinstance(entry.lock_version, bool)
                or not isinstance(entry.lock_version, int)
                or not -MAX_AMOUNT - 1 <= entry.lock_version <= MAX_AMOUNT
            ):
                raise errors.ValidationFailed(
                    "lock_version must be an integer", field=f"ledger_entries[{i}].lock_version"
                )
        if debits != credits:
            raise errors.Unbalanced(
                f"debits ({debits}) and credits ({credits}) must be equal",
                debits=debits,
                credits=credits,
            )
        if debits > MAX_AMOUNT:
            raise errors.ValidationFailed("the transaction's total exceeds the maximum amount")
        return status
