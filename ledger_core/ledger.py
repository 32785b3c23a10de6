"""The ledger's operations: ledgers, accounts, transactions, entries, balances.

Every method takes a SQLAlchemy ``Connection`` inside a transaction that the caller owns (the API
request, the activity, the test): the ledger never commits. Writes that fail raise a
``LedgerError`` and leave the database transaction aborted or untouched, never half-written.

The hot path, ``create_transaction``, is one pipelined round trip: the transaction row, its
entries (the database's triggers update the running totals, locking accounts in id order) and the
balance-condition check, sent together; the commit is the caller's second round trip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, Select, and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import errors
from ledger_core.checks import MAX_AMOUNT, MAX_PAGE, check_amount, check_aware, utc_now
from ledger_core.currencies import resolve_exponent
from ledger_core.deferred import Statement, run
from ledger_core.ids import uuid7
from ledger_core.schema import ledger_accounts, ledger_entries, ledger_transactions, ledgers
from ledger_core.types import (
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
    Page,
    RunningTotals,
    TransactionStatus,
)

_BALANCE_KINDS = frozenset(k.value for k in BalanceKind)
_CONDITION_OPS = frozenset(o.value for o in ConditionOp)

# SQLSTATEs raised by the schema's functions and triggers (see the 0001 migration).
SQLSTATE_CONDITION_FAILED = "LC001"
SQLSTATE_IMMUTABLE = "LC002"
SQLSTATE_ARCHIVED = "LC003"
SQLSTATE_INVALID_TRANSITION = "LC004"
SQLSTATE_UNBALANCED = "LC005"
SQLSTATE_OUT_OF_RANGE = "22003"  # a total beyond BIGINT
SQLSTATE_FOREIGN_KEY = "23503"  # also raised by the entry trigger for a missing reference

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


# Set-based writes (also deferred to the commit, ledger_core.deferred): JSON arrays of rows.
# A hot read, built once (a statement built per call costs more than the read's round trip).
_ACCOUNT_BY_ID = (
    select(ledger_accounts, ledgers.c.currency_exponent)
    .join(ledgers, ledgers.c.id == ledger_accounts.c.ledger_id)
    .where(ledger_accounts.c.id == bindparam("account_id"))
)

# ledger_insert_transactions: see the 0006 migration (a function, so its plan is kept).
_SET_INSERT = "SELECT ledger_insert_transactions(%s::jsonb, %s::jsonb)"
_SET_CHECK = """
SELECT ledger_check_conditions(x.id, x.conditions)
  FROM jsonb_to_recordset(%s::jsonb) AS x(id uuid, conditions jsonb)
"""
_SET_STATUS = """
WITH moved AS (
    UPDATE ledger_transactions
       SET status = %s, updated_at = %s, posted_at = %s, archived_at = %s
     WHERE id = ANY (%s::uuid[]) AND status = 'pending'
    RETURNING 1
)
SELECT ledger_require(count(*) = %s, 'only pending transactions are posted or archived',
                      'LC004')
  FROM moved
"""
_SET_LOCK = """
SELECT count(*) FROM (SELECT id FROM ledger_accounts WHERE id = ANY (%s::uuid[]) ORDER BY id
                      FOR NO KEY UPDATE) locked
"""


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _PreparedWrite:
    """A validated transaction write: its statement, its condition check and its result."""

    sql: str
    params: list[Any]
    check_params: dict[str, Any] | None
    request_hash: str | None
    result: LedgerTransaction


@dataclass(frozen=True, slots=True)
class _AccountMeta:
    """The parts of an account that never change (a trigger refuses it), safe to cache."""

    ledger_id: uuid.UUID
    normal_balance: NormalBalance
    currency: str


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


def _merge_metadata(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Modern Treasury's rule: given keys are set; a key set to null or "" is removed."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def translate_database_error(exc: BaseException) -> errors.LedgerError | None:
    """The domain error behind a database error raised by the schema's own checks, if any.

    Callers that commit (API, activities) use it, since some checks run at commit time.
    """
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, psycopg.Error) or orig.diag is None:
        return None
    state = orig.sqlstate
    message = orig.diag.message_primary or str(orig)
    if state == SQLSTATE_CONDITION_FAILED:
        detail = json.loads(orig.diag.message_detail or "{}")
        return errors.BalanceConditionFailed(message, **detail)
    if state == SQLSTATE_UNBALANCED:
        return errors.Unbalanced(message)
    if state == SQLSTATE_INVALID_TRANSITION:
        return errors.InvalidStateTransition(message)
    if state in (SQLSTATE_IMMUTABLE, SQLSTATE_ARCHIVED):
        return errors.ImmutableRecord(message)
    if state == SQLSTATE_OUT_OF_RANGE:
        return errors.ValidationFailed(
            f"an account's running total would exceed the maximum of {MAX_AMOUNT} minor units"
        )
    if state == SQLSTATE_FOREIGN_KEY:
        return errors.NotFound(message)
    return None


class LedgerService:
    """The ledger API for Python callers. One instance per process; it caches only the
    immutable parts of accounts."""

    def __init__(self) -> None:
        self._accounts: dict[uuid.UUID, _AccountMeta] = {}
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
    ) -> Ledger:
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
            )
            .returning(*ledgers.c)
        ).one()
        return _ledger(row)

    def get_ledger(self, conn: Connection, ledger_id: uuid.UUID) -> Ledger:
        row = conn.execute(select(ledgers).where(ledgers.c.id == ledger_id)).one_or_none()
        if row is None:
            raise errors.NotFound(f"ledger {ledger_id} not found", resource="ledger")
        return _ledger(row)

    def list_ledgers(
        self, conn: Connection, *, after: uuid.UUID | None = None, limit: int = 25
    ) -> Page[Ledger]:
        query = select(ledgers)
        return _page(conn, query, ledgers.c.id, after, limit, _ledger)

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
    ) -> LedgerAccount:
        """Create an account. With an ``external_id`` that exists in the ledger, the same request
        returns the existing account and a different one is an ``IdempotencyConflict``."""
        ledger = self.get_ledger(conn, ledger_id)
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
        return _account(row, ledger.currency_exponent)

    def get_account(
        self, conn: Connection, account_id: uuid.UUID, *, as_of: datetime | None = None
    ) -> LedgerAccount:
        """The account with O(1) running-total balances, or, with ``as_of``, balances summed
        from the entries effective at or before that instant (current statuses)."""
        check_aware(as_of, "as_of")
        row = conn.execute(_ACCOUNT_BY_ID, {"account_id": account_id}).one_or_none()
        if row is None:
            raise errors.NotFound(f"ledger account {account_id} not found", resource="account")
        account = _account(row, row.currency_exponent)
        if as_of is None:
            return account
        totals = self._totals_as_of(conn, account_id, as_of)
        return dataclasses.replace(account, totals=totals)

    def get_account_by_external_id(
        self, conn: Connection, ledger_id: uuid.UUID, external_id: str
    ) -> LedgerAccount:
        row = conn.execute(
            select(ledger_accounts, ledgers.c.currency_exponent)
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
        return _account(row, row.currency_exponent)

    def list_accounts(
        self,
        conn: Connection,
        *,
        ledger_id: uuid.UUID | None = None,
        external_id: str | None = None,
        after: uuid.UUID | None = None,
        limit: int = 25,
    ) -> Page[LedgerAccount]:
        query = select(ledger_accounts, ledgers.c.currency_exponent).join(
            ledgers, ledgers.c.id == ledger_accounts.c.ledger_id
        )
        if ledger_id is not None:
            query = query.where(ledger_accounts.c.ledger_id == ledger_id)
        if external_id is not None:
            query = query.where(ledger_accounts.c.external_id == external_id)
        return _page(
            conn,
            query,
            ledger_accounts.c.id,
            after,
            limit,
            lambda r: _account(r, r.currency_exponent),
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
            .values(metadata=_merge_metadata(current, metadata), updated_at=utc_now())
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
    ) -> dict[uuid.UUID, _AccountMeta]:
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
                    meta = _AccountMeta(
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
        pg = _driver(conn)
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
            pg = _driver(conn)
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

    def get_transaction(self, conn: Connection, transaction_id: uuid.UUID) -> LedgerTransaction:
        row = conn.execute(
            select(ledger_transactions).where(ledger_transactions.c.id == transaction_id)
        ).one_or_none()
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
        after: uuid.UUID | None = None,
        limit: int = 25,
    ) -> Page[LedgerTransaction]:
        t = ledger_transactions
        query = select(t)
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
        if status is not None:
            query = query.where(t.c.status == str(status))
        if external_id is not None:
            query = query.where(t.c.external_id == external_id)
        check_aware(effective_at_gte, "effective_at_gte")
        check_aware(effective_at_lt, "effective_at_lt")
        if effective_at_gte is not None:
            query = query.where(t.c.effective_at >= effective_at_gte)
        if effective_at_lt is not None:
            query = query.where(t.c.effective_at < effective_at_lt)
        page = _page(conn, query, t.c.id, after, limit, lambda r: r)
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
        return [_transaction(r, by_txn.get(r.id, [])) for r in rows]

    def update_transaction(
        self,
        conn: Connection,
        transaction_id: uuid.UUID,
        *,
        status: TransactionStatus | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> LedgerTransaction:
        """Post or archive a pending transaction, and/or change its metadata.

        Asking for the status it already has is a no-op, so a retried post is harmless.
        """
        t = ledger_transactions
        if status is not None:
            target = TransactionStatus(status)
            if target is TransactionStatus.PENDING:
                raise errors.InvalidStateTransition(
                    "a transaction can only be moved to posted or archived"
                )
            now = utc_now()
            moved = conn.execute(
                t.update()
                .where(t.c.id == transaction_id, t.c.status == "pending")
                .values(
                    status=str(target),
                    updated_at=now,
                    posted_at=now if target is TransactionStatus.POSTED else None,
                    archived_at=now if target is TransactionStatus.ARCHIVED else None,
                )
                .returning(t.c.id)
            ).one_or_none()
            if moved is None:
                current = conn.execute(
                    select(t.c.status).where(t.c.id == transaction_id)
                ).scalar_one_or_none()
                if current is None:
                    raise errors.NotFound(
                        f"ledger transaction {transaction_id} not found", resource="transaction"
                    )
                if current != str(target):
                    raise errors.InvalidStateTransition(
                        f"a {current} transaction cannot become {target}; only pending "
                        "transactions are posted or archived",
                        status=current,
                    )
        if metadata is not None:
            current_meta = conn.execute(
                select(t.c.metadata).where(t.c.id == transaction_id).with_for_update()
            ).scalar_one_or_none()
            if current_meta is None:
                raise errors.NotFound(
                    f"ledger transaction {transaction_id} not found", resource="transaction"
                )
            conn.execute(
                t.update()
                .where(t.c.id == transaction_id)
                .values(metadata=_merge_metadata(current_meta, metadata), updated_at=utc_now())
            )
        return self.get_transaction(conn, transaction_id)

    def post_transaction(self, conn: Connection, transaction_id: uuid.UUID) -> LedgerTransaction:
        return self.update_transaction(conn, transaction_id, status=TransactionStatus.POSTED)

    def archive_transaction(self, conn: Connection, transaction_id: uuid.UUID) -> LedgerTransaction:
        return self.update_transaction(conn, transaction_id, status=TransactionStatus.ARCHIVED)

    def create_transactions(
        self,
        conn: Connection,
        news: Sequence[NewLedgerTransaction],
        *,
        at_commit: bool = False,
        ids: Sequence[uuid.UUID] | None = None,
    ) -> list[LedgerTransaction]:
        """Write new transactions set-based: one statement for every transaction and entry, one
        for their balance conditions; now, or with the commit of ``conn``'s database transaction
        (``at_commit``, see ``ledger_core.deferred``). Returns the transactions as written.

        ``ids``: the transactions' ids, when the caller needs them before (default: new ones).
        Each must be new: an ``external_id`` that exists fails the commit (a unique violation),
        so re-running the caller's unit of work finds what a concurrent one committed. Entries go
        in in account-id order across the whole set, so concurrent writers cannot deadlock."""
        if not news:
            return []
        txns: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        results = []
        if ids is not None and len(ids) != len(news):
            raise ValueError("one id per transaction")
        for n, new in enumerate(news):
            write = self._prepare(conn, new, None, txn_id=None if ids is None else ids[n])
            txn = write.result
            txns.append(
                {
                    "id": txn.id,
                    "ledger_id": txn.ledger_id,
                    "status": str(txn.status),
                    "effective_at": txn.effective_at,
                    "external_id": txn.external_id,
                    "description": txn.description,
                    "metadata": txn.metadata,
                    "total_amount": sum(
                        e.amount for e in txn.entries if e.direction is Direction.DEBIT
                    ),
                    "request_hash": write.request_hash,
                    "created_at": txn.created_at,
                    "posted_at": txn.posted_at,
                }
            )
            entries.extend(
                {
                    "id": e.id,
                    "transaction_id": txn.id,
                    "account_id": e.account_id,
                    "direction": str(e.direction),
                    "amount": e.amount,
                    "ordinal": i,
                }
                for i, e in enumerate(txn.entries)
            )
            if write.check_params is not None:
                checks.append({"id": txn.id, "conditions": write.check_params["conditions"].obj})
            results.append(txn)
        run(conn, Statement(_SET_INSERT, (_json(txns), _json(entries))), at_commit=at_commit)
        if checks:
            run(conn, Statement(_SET_CHECK, (_json(checks),)), at_commit=at_commit)
        return results

    def set_status(
        self,
        conn: Connection,
        transaction_ids: Sequence[uuid.UUID],
        status: TransactionStatus,
        *,
        at_commit: bool = False,
    ) -> None:
        """Post or archive pending transactions in one statement (the status trigger then moves
        each account's totals once), now or with the commit. A transaction that is not pending
        fails the statement (``invalid_state_transition``): the caller knows they are pending
        because it holds the rows that point to them."""
        target = TransactionStatus(status)
        if target is TransactionStatus.PENDING:
            raise errors.InvalidStateTransition(
                "a transaction can only be moved to posted or archived"
            )
        ids = sorted(set(transaction_ids))
        if not ids:
            return
        now = utc_now()
        run(
            conn,
            Statement(
                _SET_STATUS,
                (
                    str(target),
                    now,
                    now if target is TransactionStatus.POSTED else None,
                    now if target is TransactionStatus.ARCHIVED else None,
                    [str(i) for i in ids],
                    len(ids),
                ),
            ),
            at_commit=at_commit,
        )

    def defer_lock_accounts(self, conn: Connection, account_ids: Iterable[uuid.UUID]) -> None:
        """``lock_accounts`` as the next of the statements deferred to the commit: for a commit
        whose statements touch accounts in more than one statement."""
        ids = sorted(set(account_ids))
        if ids:
            run(conn, Statement(_SET_LOCK, ([str(i) for i in ids],)), at_commit=True)

    def lock_accounts(self, conn: Connection, account_ids: Iterable[uuid.UUID]) -> None:
        """Lock these accounts' rows in id order until the database transaction ends.

        Every single write locks its accounts in id order. A caller that makes several writes
        in one database transaction calls this first with every account they touch, so that its
        locks follow the same global order as a whole and it cannot deadlock with another
        writer of those accounts."""
        ids = sorted(set(account_ids))
        if ids:
            conn.execute(
                select(ledger_accounts.c.id)
                .where(ledger_accounts.c.id.in_(ids))
                .order_by(ledger_accounts.c.id)
                .with_for_update(key_share=True)
            ).all()

    def reverse_transaction(
        self,
        conn: Connection,
        transaction_id: uuid.UUID,
        *,
        external_id: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        effective_at: datetime | None = None,
    ) -> LedgerTransaction:
        """Undo a posted transaction with a new posted one, every entry flipped, linked both
        ways. At most once: a second reversal raises ``AlreadyReversed``, except a retry with
        the same ``external_id``, which returns the existing reversal."""
        t = ledger_transactions
        row = conn.execute(
            select(t).where(t.c.id == transaction_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise errors.NotFound(
                f"ledger transaction {transaction_id} not found", resource="transaction"
            )
        if row.reversed_by_id is not None:
            reversal = self.get_transaction(conn, row.reversed_by_id)
            if external_id is not None and reversal.external_id == external_id:
                return reversal
            raise errors.AlreadyReversed(
                f"ledger transaction {transaction_id} was already reversed by {reversal.id}",
                reversed_by_id=str(reversal.id),
            )
        if row.status != TransactionStatus.POSTED:
            raise errors.InvalidStateTransition(
                f"only posted transactions are reversed; this one is {row.status}"
                + (" (archive it instead)" if row.status == "pending" else ""),
                status=row.status,
            )
        original = self._with_entries(conn, [row])[0]
        flipped = tuple(
            NewEntry(
                account_id=e.account_id,
                direction=Direction.CREDIT if e.direction is Direction.DEBIT else Direction.DEBIT,
                amount=e.amount,
            )
            for e in original.entries
        )
        reversal = self.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=original.ledger_id,
                entries=flipped,
                status=TransactionStatus.POSTED,
                effective_at=effective_at,
                external_id=external_id,
                description=description or f"Reversal of {transaction_id}",
                metadata=metadata or {},
            ),
            reverses_id=transaction_id,
        )
        conn.execute(
            t.update()
            .where(t.c.id == transaction_id)
            .values(reversed_by_id=reversal.id, updated_at=utc_now())
        )
        return reversal

    # ---------------------------------------------------------------- entries

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
        after: uuid.UUID | None = None,
        limit: int = 25,
    ) -> Page[LedgerEntry]:
        e, t = ledger_entries, ledger_transactions
        query = select(e, t.c.status, t.c.effective_at).join(t, t.c.id == e.c.transaction_id)
        if ledger_id is not None:
            query = query.where(e.c.ledger_id == ledger_id)
        if account_id is not None:
            query = query.where(e.c.account_id == account_id)
        if transaction_id is not None:
            query = query.where(e.c.transaction_id == transaction_id)
        if status is not None:
            query = query.where(t.c.status == str(status))
        check_aware(effective_at_gte, "effective_at_gte")
        check_aware(effective_at_lt, "effective_at_lt")
        if effective_at_gte is not None:
            query = query.where(t.c.effective_at >= effective_at_gte)
        if effective_at_lt is not None:
            query = query.where(t.c.effective_at < effective_at_lt)
        return _page(conn, query, e.c.id, after, limit, _entry)


# -------------------------------------------------------------------- helpers


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def _page(
    conn: Connection,
    query: Select[Any],
    key: Any,
    after: uuid.UUID | None,
    limit: int,
    build: Any,
) -> Page[Any]:
    if not 1 <= limit <= MAX_PAGE:
        raise errors.ValidationFailed(
            f"per_page must be between 1 and {MAX_PAGE}", field="per_page"
        )
    if after is not None:
        query = query.where(key > after)
    rows = conn.execute(query.order_by(key).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [build(r) for r in rows]
    return Page(items=items, next_after=rows[-1].id if more else None)


def _ledger(row: Row[Any]) -> Ledger:
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


def _account(row: Row[Any], exponent: int) -> LedgerAccount:
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


def _entry(row: Row[Any]) -> LedgerEntry:
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


def _transaction(row: Row[Any], entry_rows: Sequence[Row[Any]]) -> LedgerTransaction:
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
