"""Plain helpers shared by several test packages: polling until a check passes, counting the
ledger transactions of an external id, summing entries in SQL (accounts whose running totals
drifted from them), running the same work in several
threads at once."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, func, select, text

from ledger_core.schema import ledger_transactions

T = TypeVar("T")

# An account's entries summed per status and direction, named as the columns of its running
# totals: pd, pc (pending debits, credits), sd, sc (posted). For a query over ledger_entries ``e``
# joined to ledger_transactions ``t``.
ENTRY_SUMS_SQL = """
    coalesce(sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.direction = 'debit'), 0) AS pd,
    coalesce(sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.direction = 'credit'), 0) AS pc,
    coalesce(sum(e.amount) FILTER (WHERE t.status = 'posted' AND e.direction = 'debit'), 0) AS sd,
    coalesce(sum(e.amount) FILTER (WHERE t.status = 'posted' AND e.direction = 'credit'), 0) AS sc
"""


async def eventually(
    check: Callable[[], T | Awaitable[T]], *, timeout: float = 15.0, interval: float = 0.05
) -> T:
    """Poll ``check`` (sync or async) until it returns without an AssertionError (or time runs
    out, then its last AssertionError is raised)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            return result  # type: ignore[return-value]
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(interval)


def ledger_transaction_count(engine: Engine, external_id: str) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(ledger_transactions)
                .where(ledger_transactions.c.external_id == external_id)
            ).scalar_one()
        )


def drifted_accounts(conn: Connection, ledger_id: uuid.UUID | None = None) -> list[Row[Any]]:
    """The accounts (of ``ledger_id``, or all) whose running totals differ from the sums of
    their entries: the account's totals, then the sums (``ENTRY_SUMS_SQL``)."""
    return list(
        conn.execute(
            text(
                f"""
                SELECT a.id, a.pending_debits, a.pending_credits, a.posted_debits,
                       a.posted_credits, s.*
                  FROM ledger_accounts a
                  LEFT JOIN LATERAL (
                    SELECT {ENTRY_SUMS_SQL}
                      FROM ledger_entries e
                      JOIN ledger_transactions t ON t.id = e.transaction_id
                     WHERE e.account_id = a.id
                  ) s ON true
                 WHERE (CAST(:l AS uuid) IS NULL OR a.ledger_id = :l)
                   AND (a.pending_debits, a.pending_credits, a.posted_debits, a.posted_credits)
                       IS DISTINCT FROM (s.pd, s.pc, s.sd, s.sc)
                """
            ),
            {"l": ledger_id},
        ).all()
    )


def run_in_threads(work: Callable[[int], object], count: int) -> list[BaseException]:
    """Run ``work(0)`` ... ``work(count - 1)`` at once, one thread each; what they raised."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
