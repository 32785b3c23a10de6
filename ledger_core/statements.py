"""An account's statement over a window of time: the opening posted balance, every posted entry
of the window in order with the running balance, the closing balance, and the pending debits
still open at the window's end. It knows nothing of who owns the account.

When an entry counts: its **statement time**. A transaction's ``effective_at`` never changes
(the ledger forbids it), but a pending transaction posts later, keeping its ``effective_at``.
Ordering posted entries by ``effective_at`` alone would let an earning booked (pending) on day 3
and posted on day 10 appear in a day 1-5 statement asked on day 11 but not in the same
statement asked on day 4. So:

- a transaction **written posted** counts at its ``effective_at`` (a backdated correction lands
  in the past period it belongs to: that is what backdating is for);
- a transaction **written pending and posted later** counts at
  ``greatest(effective_at, posted_at)``: not before it was posted.

How the ledger tells them apart: the write stamps ``created_at`` and (for a posted write)
``posted_at`` with one and the same clock reading, and posting a pending transaction stamps
``posted_at`` with a later reading; the schema forbids changing ``created_at``. So
``posted_at = created_at`` means written posted. (A pending transaction posted within the same
microsecond as it was written would read as written posted: it was posted when it was written,
which is the same thing.)

Nothing else ever moves an entry into a closed window: a pending or archived transaction counts
nowhere, and a later posting counts at its posting. Opening and closing both come from the same
rule (sums over the account's posted entries with statement time before the window's start, and
before its end), in SQL; never from the running totals or the as-of-``effective_at`` balances,
which follow other rules.

A window is closed once its end has passed and every database transaction that stamped a time
before it has committed: a statement asked a few moments after its end may still change
(``AccountStatement.final`` is False until ``SETTLING`` has passed after the end).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from ledger_core import errors
from ledger_core.checks import check_aware, utc_now

MAX_LINES = 10_000
"""The most lines (and open pending debits) one statement holds: ask a shorter window."""

SETTLING = timedelta(minutes=5)
"""How long after its end a window is taken as closed: every write that stamped a time in it
has committed (writes are single short database transactions)."""

# The statement time of a posted transaction ``t`` (see the module's docstring).
_STATEMENT_AT = """
CASE WHEN t.posted_at > t.created_at THEN greatest(t.effective_at, t.posted_at)
     ELSE t.effective_at END
"""

# Credit-normal: a credit is +; debit-normal: a debit is +.
_SIGNED = "CASE WHEN e.direction = a.normal_balance THEN e.amount ELSE -e.amount END"

# One statement, so one snapshot, and one pass over the account's entries: the opening, the
# closing and the count (of its posted entries), the window's lines (at most :limit) with their
# running balance, and what is held at the close (at most :limit): the entries against the
# account's normal balance (a debit of a credit-normal account) written pending before the end
# and neither posted (by their statement time) nor archived by then. The totals come with every
# line (and once without a line, when there is none).
_STATEMENT = f"""
WITH every AS MATERIALIZED (
    SELECT e.id AS entry_id, e.transaction_id, {_SIGNED} AS amount, t.status,
           {_STATEMENT_AT} AS statement_at, e.direction <> a.normal_balance AS against,
           t.created_at, t.posted_at, t.archived_at
      FROM ledger_entries e
      JOIN ledger_accounts a ON a.id = e.account_id
      JOIN ledger_transactions t ON t.id = e.transaction_id
     WHERE e.account_id = :account
), x AS (
    SELECT entry_id, transaction_id, amount, statement_at FROM every WHERE status = 'posted'
), totals AS (
    SELECT coalesce(sum(amount) FILTER (WHERE statement_at < :start), 0)::bigint AS opening,
           coalesce(sum(amount) FILTER (WHERE statement_at < :end), 0)::bigint AS closing,
           count(*) FILTER (WHERE statement_at >= :start AND statement_at < :end) AS n_lines
      FROM x
), lines AS (
    SELECT x.*, t.effective_at, t.posted_at, t.external_id, t.description, t.metadata,
           t.reverses_id
      FROM (SELECT * FROM x
             WHERE statement_at >= :start AND statement_at < :end
             ORDER BY statement_at, entry_id
             LIMIT :limit) x
      JOIN ledger_transactions t ON t.id = x.transaction_id
), held AS (
    SELECT h.entry_id, h.transaction_id, h.amount, h.created_at, t.effective_at,
           t.external_id, t.description, t.metadata
      FROM (SELECT * FROM every
             WHERE against
               AND created_at < :end
               AND (posted_at IS NULL OR posted_at > created_at)
               AND (status <> 'posted' OR statement_at >= :end)
               AND (archived_at IS NULL OR archived_at >= :end)
             ORDER BY created_at, entry_id
             LIMIT :limit) h
      JOIN ledger_transactions t ON t.id = h.transaction_id
)
SELECT 'line' AS part, totals.opening, totals.closing, totals.n_lines,
       lines.entry_id, lines.transaction_id, lines.amount, lines.statement_at,
       lines.effective_at, lines.posted_at, NULL::timestamptz AS since, lines.external_id,
       lines.description, lines.metadata, lines.reverses_id,
       totals.opening + sum(lines.amount) OVER (ORDER BY lines.statement_at, lines.entry_id)
           AS balance
  FROM totals LEFT JOIN lines ON true
UNION ALL
SELECT 'held', NULL, NULL, NULL, entry_id, transaction_id, amount, NULL, effective_at, NULL,
       created_at, external_id, description, metadata, NULL, NULL
  FROM held
 ORDER BY part DESC, statement_at, since, entry_id
"""  # noqa: S608 (constant SQL fragments)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """A posted entry of the window. ``amount`` is signed: + raises the account's balance
    (a credit of a credit-normal account); ``balance`` is the running balance after it."""

    entry_id: uuid.UUID
    transaction_id: uuid.UUID
    statement_at: datetime
    effective_at: datetime
    posted_at: datetime
    amount: int
    balance: int
    external_id: str | None
    description: str | None
    metadata: dict[str, Any]
    reverses_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class HeldEntry:
    """A pending entry against the account's normal balance (a debit of a credit-normal
    account), open at the window's end (``amount`` < 0): not part of the arithmetic."""

    entry_id: uuid.UUID
    transaction_id: uuid.UUID
    amount: int
    created_at: datetime
    effective_at: datetime
    external_id: str | None
    description: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccountStatement:
    """``opening + sum(line.amount for line in lines) == closing``, always."""

    account_id: uuid.UUID
    start: datetime
    end: datetime
    opening: int
    closing: int
    lines: tuple[StatementLine, ...]
    held_at_close: tuple[HeldEntry, ...]
    generated_at: datetime

    @property
    def final(self) -> bool:
        """The window is closed: asked again, the statement is the same document (unless a
        backdated correction is written into it)."""
        return self.generated_at >= self.end + SETTLING


class AccountStatements:
    """``account_statement``: a read on one account over a window."""

    def account_statement(
        self,
        conn: Connection,
        account_id: uuid.UUID,
        start: datetime,
        end: datetime,
        *,
        max_lines: int = MAX_LINES,
    ) -> AccountStatement:
        """The account's statement for [``start``, ``end``). Raises ``NotFound`` for an unknown
        account, ``StatementTooLarge`` beyond ``max_lines`` lines or open pending debits.

        Everything is read in one statement (one snapshot), so the figures always agree, and
        with what is held at the close."""
        check_aware(start, "start")
        check_aware(end, "end")
        if end <= start:
            raise errors.ValidationFailed("a statement's end must be after its start", field="end")
        exists = conn.execute(
            text("SELECT 1 FROM ledger_accounts WHERE id = :id"), {"id": account_id}
        ).first()
        if exists is None:
            raise errors.NotFound(f"ledger account {account_id} not found", resource="account")
        rows = conn.execute(
            text(_STATEMENT),
            {"account": account_id, "start": start, "end": end, "limit": max_lines + 1},
        ).all()
        first = rows[0]
        if first.n_lines > max_lines:
            raise errors.StatementTooLarge(
                f"the statement has {first.n_lines} lines, more than {max_lines}: ask a shorter "
                "period",
                lines=first.n_lines,
                max_lines=max_lines,
            )
        lines = tuple(
            StatementLine(
                entry_id=r.entry_id,
                transaction_id=r.transaction_id,
                statement_at=r.statement_at,
                effective_at=r.effective_at,
                posted_at=r.posted_at,
                amount=r.amount,
                balance=int(r.balance),
                external_id=r.external_id,
                description=r.description,
                metadata=r.metadata,
                reverses_id=r.reverses_id,
            )
            for r in rows
            if r.part == "line" and r.entry_id is not None
        )
        closing = lines[-1].balance if lines else first.opening
        # The same rule twice (the closing sum and the running balance): they agree or the
        # statement is wrong.
        if closing != first.closing:  # pragma: no cover - a broken invariant
            raise AssertionError(f"closing {first.closing} != running balance {closing}")
        held = tuple(
            HeldEntry(
                entry_id=r.entry_id,
                transaction_id=r.transaction_id,
                amount=r.amount,
                created_at=r.since,
                effective_at=r.effective_at,
                external_id=r.external_id,
                description=r.description,
                metadata=r.metadata,
            )
            for r in rows
            if r.part == "held"
        )
        if len(held) > max_lines:
            raise errors.StatementTooLarge(
                f"more than {max_lines} pending debits are open at the statement's end: ask an "
                "earlier period",
                max_lines=max_lines,
            )
        return AccountStatement(
            account_id=account_id,
            start=start,
            end=end,
            opening=first.opening,
            closing=closing,
            lines=lines,
            held_at_close=held,
            generated_at=utc_now(),
        )
