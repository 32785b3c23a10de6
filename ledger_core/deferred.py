"""Statements deferred to the commit, sent to PostgreSQL with the COMMIT in one message.

A write that locks hot rows (the platform's clearing account, which every order credits) should
hold those locks only while the server works, never across a round trip to the client: otherwise
every writer waits for the slowest client's network and Python. ``defer(conn, statement)`` queues
a statement in the connection's database transaction; when that transaction commits (whoever
commits it: an API request, an activity, a test's ``engine.begin()``), the queued statements and
the COMMIT go to the server as one simple-protocol message (parameters bound on the client by
psycopg, safely quoted). A rollback drops them.

On a connection in autocommit mode (``isolation_level="AUTOCOMMIT"``: its reads each ran on
their own, with no BEGIN round trip) the message is ``BEGIN; ...; COMMIT``: for a unit of work
whose every write is deferred, that is the whole transaction in one message.

What a deferred statement means for its caller:

* it runs after every statement the caller executed directly, in the order deferred;
* it is not visible to the caller's own later reads in the same transaction; callers compute what
  they return in Python (``LedgerService.defer_transactions`` returns the transactions it wrote);
* its failure fails the commit (the whole database transaction is rolled back), raised as the
  SQLAlchemy ``DBAPIError`` a direct statement would raise; a write that must not happen twice is
  written so that a second attempt fails (a unique key), never so that it silently does nothing.

The hook is installed on every SQLAlchemy ``Engine`` when ledger_core is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

_KEY = "ledger_core.deferred"


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL with ``%s`` placeholders (a literal ``%`` written ``%%``) and its parameters."""

    sql: str
    params: tuple[Any, ...] = ()


def defer(conn: Connection, statement: Statement) -> None:
    """Queue ``statement`` to run with the commit of ``conn``'s database transaction."""
    if not conn.in_transaction():
        conn.begin()  # autobegin, so that the queue belongs to this transaction
    conn.info.setdefault(_KEY, []).append(statement)


def execute(conn: Connection, statement: Statement) -> None:
    """Run ``statement`` now, in ``conn``'s database transaction, bound as a deferred one would
    be (so that a write is built once and run either way)."""
    if not conn.in_transaction():
        conn.begin()
    _send(conn, statement.sql, list(statement.params), committing=False)


def run(conn: Connection, statement: Statement, *, at_commit: bool) -> None:
    """``defer`` it (``at_commit``) or ``execute`` it now."""
    if at_commit:
        defer(conn, statement)
    else:
        execute(conn, statement)


def pending(conn: Connection) -> int:
    """How many statements wait for the commit (for tests and assertions)."""
    return len(conn.info.get(_KEY, ()))


def _discard(conn: Connection) -> None:
    # A connection the database dropped (invalidated) holds nothing to discard: its pool record
    # clears its info when it reconnects. Asking for it would raise PendingRollbackError from
    # the rollback that closes it, hiding the error that broke it (a 503 would become a 500).
    if conn.invalidated:
        return
    conn.info.pop(_KEY, None)


def _flush_with_commit(conn: Connection) -> None:
    """The commit hook: the deferred statements and COMMIT in one message. psycopg's own commit,
    which SQLAlchemy calls next, then finds no transaction open and sends nothing."""
    statements: Sequence[Statement] | None = conn.info.pop(_KEY, None)
    if not statements:
        return
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    # A connection in autocommit mode (its reads ran as statements of their own) has no
    # transaction open: the message opens one.
    begin = (
        "BEGIN;\n" if driver.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE else ""
    )
    _send(
        conn,
        begin + ";\n".join(s.sql for s in statements) + ";\nCOMMIT",
        [p for s in statements for p in s.params],
        committing=True,
    )


def _send(conn: Connection, sql: str, params: list[Any], *, committing: bool) -> None:
    """One message (simple query protocol, parameters bound on the client); psycopg errors as
    SQLAlchemy's, with a dropped connection invalidated as SQLAlchemy would."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with psycopg.ClientCursor(driver) as cur:
            cur.execute(sql, params)
    except psycopg.Error as exc:
        invalidated = conn.dialect.is_disconnect(cast(Any, exc), cast(Any, driver), None)
        if invalidated:
            conn.invalidate(exc)
        elif committing:
            # The failed statement left the server's transaction aborted. Roll it back here: a
            # failed commit counts as the end of the transaction for SQLAlchemy, whose pool
            # then skips its own rollback when the connection is returned.
            driver.rollback()
        raise DBAPIError.instance(
            sql, None, exc, psycopg.Error, connection_invalidated=invalidated
        ) from exc


event.listen(Engine, "begin", _discard)
event.listen(Engine, "rollback", _discard)
event.listen(Engine, "commit", _flush_with_commit)
