"""The ledger's operations: ledgers, accounts, transactions, entries, balances.

Every method takes a SQLAlchemy ``Connection`` inside a transaction that the caller owns (the API
request, the activity, the test): the ledger never commits. Writes that fail raise a
``LedgerError`` and leave the database transaction aborted or untouched, never half-written.

The hot path, ``create_transaction`` (``ledger_core.writes``), is one pipelined round trip:
the transaction row, its entries (the database's triggers update the running totals, locking
accounts in id order) and the balance-condition check, sent together; the commit is the caller's
second round trip.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger_core import errors
from ledger_core.checks import (
    merge_metadata,
    utc_now,
)
from ledger_core.database_errors import translate_database_error
from ledger_core.deferred import Statement, run
from ledger_core.schema import ledger_accounts, ledger_transactions
from ledger_core.statements import AccountStatements
from ledger_core.types import (
    Direction,
    LedgerTransaction,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
)
from ledger_core.writes import TransactionWrites

__all__ = ["LedgerService", "translate_database_error"]

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


class LedgerService(TransactionWrites, AccountStatements):
    """The ledger API for Python callers. One instance per process; it caches only the
    immutable parts of accounts.

    Its operations live by subject: ledgers and accounts (``ledger_core.accounts``), reads of
    transactions and entries (``ledger_core.reads``), the write of one transaction
    (``ledger_core.writes``), an account's statement over a window (``ledger_core.statements``);
    here: changing a transaction's status, set-based writes, locks and
    reversals."""

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
                .values(metadata=merge_metadata(current_meta, metadata), updated_at=utc_now())
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
