"""Statements deferred to the commit (``ledger_core.deferred``) on a connection the database
drops: closing it rolls back without raising, so the error that broke it is the one the caller
sees (the API answers it with a 503, not a 500)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from ledger_core.deferred import Statement, defer, pending


def test_a_connection_dropped_with_deferred_statements_closes_quietly(engine: Engine) -> None:
    conn = engine.connect()
    defer(conn, Statement("SELECT 1", ()))
    assert pending(conn) == 1
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(OperationalError):
        conn.execute(text("SELECT 1"))
    assert conn.invalidated
    conn.close()  # raised PendingRollbackError, hiding the OperationalError above
    with engine.connect() as again:  # the pool gives a working connection, with nothing queued
        assert again.execute(text("SELECT 1")).scalar_one() == 1
        assert pending(again) == 0
