"""``LedgerService.write_transaction``: a write that is its own database transaction, sent as one
round trip (BEGIN, a prepared write, the condition check, COMMIT). Same semantics as
``create_transaction`` in a committed ``engine.begin()`` block."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from ledger_core import (
    BalanceConditionFailed,
    IdempotencyConflict,
    LedgerService,
    NormalBalance,
    NotFound,
    Unbalanced,
)
from server.database import create_db_engine
from tests.helpers import run_in_threads
from tests.ledger_core.conftest import PENDING, Book, cond, credit, debit, triple


def test_a_write_moves_balances_and_is_readable(book: Book) -> None:
    cash, seller = book.account(NormalBalance.DEBIT), book.account()
    txn = book.service.write_transaction(
        book.engine,
        book.new(debit(cash, 700), credit(seller, 700), status=PENDING, description="it's"),
    )
    assert triple(book.get(seller), "pending") == (700, 0, 700)
    assert triple(book.get(seller), "posted") == (0, 0, 0)
    stored = book.txn(txn.id)
    assert stored.status == PENDING
    assert stored.description == "it's"
    assert [(e.account_id, e.amount) for e in stored.entries] == [
        (e.account_id, e.amount) for e in txn.entries
    ]
    assert book.get(seller).lock_version == 1


def test_replay_and_conflict_by_external_id(book: Book) -> None:
    cash, seller = book.account(NormalBalance.DEBIT), book.account()
    new = book.new(debit(cash, 5), credit(seller, 5), external_id="order-1", metadata={"a": "1"})
    first = book.service.write_transaction(book.engine, new)
    again = book.service.write_transaction(book.engine, new)
    assert again.id == first.id
    assert triple(book.get(seller), "posted") == (5, 0, 5)
    with pytest.raises(IdempotencyConflict):
        book.service.write_transaction(
            book.engine, book.new(debit(cash, 6), credit(seller, 6), external_id="order-1")
        )
    assert triple(book.get(seller), "posted") == (5, 0, 5)


def test_a_failed_condition_or_bad_request_writes_nothing(book: Book) -> None:
    cash, seller = book.account(NormalBalance.DEBIT), book.account()
    book.service.write_transaction(book.engine, book.new(debit(cash, 100), credit(seller, 100)))
    before = book.snapshot()
    with pytest.raises(BalanceConditionFailed) as err:
        book.service.write_transaction(
            book.engine,
            book.new(debit(seller, 101, cond("available", "gte", 0)), credit(cash, 101)),
        )
    assert err.value.details["actual"] == -1
    with pytest.raises(Unbalanced):
        book.service.write_transaction(book.engine, book.new(debit(cash, 1), credit(seller, 2)))
    with pytest.raises(NotFound):
        book.service.write_transaction(
            book.engine, book.new(debit(cash, 1), credit(uuid.uuid4(), 1))
        )
    assert book.snapshot() == before
    # A condition that holds lets the write through.
    book.service.write_transaction(
        book.engine, book.new(debit(seller, 100, cond("available", "gte", 0)), credit(cash, 100))
    )
    assert triple(book.get(seller), "available") == (100, 100, 0)


def test_a_rollback_on_the_same_connection_does_not_break_the_prepared_write(
    database_url: str,
) -> None:
    """psycopg deallocates every prepared statement when a connection rolls back; the next
    write prepares again."""
    engine = create_db_engine(database_url, pool_size=1)
    service = LedgerService()
    try:
        book = Book(engine, service)
        cash, seller = book.account(NormalBalance.DEBIT), book.account()
        for i in range(3):
            service.write_transaction(engine, book.new(debit(cash, 1), credit(seller, 1)))
            with engine.connect() as conn:  # the single pooled connection
                conn.execute(text("SELECT 1"))
                conn.rollback()
            assert triple(book.get(seller), "posted") == (i + 1, 0, i + 1)
    finally:
        engine.dispose()


def test_concurrent_writers_through_a_hot_account(book: Book) -> None:
    hot = book.account(NormalBalance.DEBIT)
    others = [book.account() for _ in range(5)]

    def work(i: int) -> None:
        for j in range(40):
            target = others[(i + j) % len(others)]
            book.service.write_transaction(
                book.engine, book.new(debit(hot, 1 + j), credit(target, 1 + j))
            )

    errors = run_in_threads(work, 6)
    assert errors == []
    total = 6 * sum(1 + j for j in range(40))
    assert triple(book.get(hot), "posted") == (0, total, total)
    assert sum(triple(book.get(o), "posted")[2] for o in others) == total
    assert book.get(hot).lock_version == 6 * 40
    with book.engine.connect() as conn:
        sums: Any = conn.execute(
            text(
                "SELECT sum(amount) FILTER (WHERE direction = 'debit'),"
                " sum(amount) FILTER (WHERE direction = 'credit')"
                " FROM ledger_entries WHERE ledger_id = :l"
            ),
            {"l": book.id},
        ).one()
    assert sums[0] == sums[1] == total
