"""An account's statement over a window (``ledger_core.statements``): a line counts at its
statement time (effective_at if written posted, the later of effective_at and the posting if
written pending), archived and pending entries are no lines, the opening and closing follow the
same rule, a debit-normal account's sign, and the pending debits open at the window's end."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from ledger_core import (
    AccountStatement,
    LedgerService,
    NotFound,
    StatementTooLarge,
    ValidationFailed,
)
from ledger_core.checks import utc_now
from tests.ledger_core.conftest import PENDING, Book, credit, debit


def statement(
    book: Book, account_id: uuid.UUID, start: datetime, end: datetime
) -> AccountStatement:
    with book.engine.connect() as conn:
        return book.service.account_statement(conn, account_id, start, end)


def test_statement_time_archived_pending_and_the_running_balance(book: Book) -> None:
    seller, cash = book.account("credit"), book.account("debit")
    t0 = utc_now()
    a = book.write(debit(cash, 1_000), credit(seller, 1_000))  # posted now
    b = book.write(debit(cash, 500), credit(seller, 500), status=PENDING)  # posts after t1
    c = book.write(debit(cash, 70), credit(seller, 70), status=PENDING)  # archived: no line
    d = book.write(debit(seller, 300), credit(cash, 300), status=PENDING)  # open at both ends
    book.archive(c)
    t1 = utc_now()
    book.post(b)
    # Written posted, effective in the first window: a correction that lands there.
    fix = book.write(debit(cash, 9), credit(seller, 9), effective_at=t0 + (t1 - t0) / 2)
    # Written posted, effective in the future: counts then.
    future = book.write(debit(cash, 40), credit(seller, 40), effective_at=t1 + timedelta(days=3))
    t2 = utc_now()

    first = statement(book, seller.id, t0, t1)
    assert first.opening == 0
    assert sorted((x.transaction_id, x.amount) for x in first.lines) == sorted(
        [(a.id, 1_000), (fix.id, 9)]
    )
    assert first.closing == 1_009 == first.lines[-1].balance
    assert [h.transaction_id for h in first.held_at_close] == [d.id]
    assert first.held_at_close[0].amount == -300

    second = statement(book, seller.id, t1, t2)
    [line] = second.lines
    assert (line.transaction_id, line.amount, line.balance) == (b.id, 500, 1_509)
    assert line.effective_at < t1 <= line.statement_at
    assert second.opening == first.closing and second.closing == 1_509

    later = statement(book, seller.id, t2, t1 + timedelta(days=4))
    assert [x.transaction_id for x in later.lines] == [future.id]
    assert later.closing == book.get(seller).balances.posted.amount == 1_549
    # The cash account is debit-normal: its debits are +.
    cash_statement = statement(book, cash.id, t0, t1 + timedelta(days=4))
    assert cash_statement.closing == book.get(cash).balances.posted.amount == 1_549
    # d credits cash: against its normal balance, so held back from it too.
    assert [h.amount for h in cash_statement.held_at_close] == [-300]


def test_a_reversal_and_a_pending_debit_posted_or_archived_after_the_end(book: Book) -> None:
    seller, cash = book.account("credit"), book.account("debit")
    t0 = utc_now()
    paid = book.write(debit(cash, 800), credit(seller, 800))
    payout = book.write(debit(seller, 200), credit(cash, 200), status=PENDING)
    failed = book.write(debit(seller, 100), credit(cash, 100), status=PENDING)
    t1 = utc_now()
    book.post(payout)
    book.archive(failed)
    reversal = book.reverse(paid)
    t2 = utc_now()
    first = statement(book, seller.id, t0, t1)
    assert sorted(h.transaction_id for h in first.held_at_close) == sorted([payout.id, failed.id])
    assert first.closing == 800
    second = statement(book, seller.id, t1, t2)
    assert [(x.transaction_id, x.amount) for x in second.lines] == [
        (payout.id, -200),
        (reversal.id, -800),
    ]
    assert second.lines[1].reverses_id == paid.id
    assert second.closing == -200 and second.held_at_close == ()


def test_the_window_and_the_cap(book: Book, engine: Engine, ledger_service: LedgerService) -> None:
    seller, cash = book.account("credit"), book.account("debit")
    t0 = utc_now()
    for _ in range(3):
        book.write(debit(cash, 1), credit(seller, 1))
    t1 = utc_now()
    with engine.connect() as conn:
        with pytest.raises(StatementTooLarge) as too_large:
            ledger_service.account_statement(conn, seller.id, t0, t1, max_lines=2)
        assert too_large.value.details["lines"] == 3
        assert (
            len(ledger_service.account_statement(conn, seller.id, t0, t1, max_lines=3).lines) == 3
        )
        with pytest.raises(ValidationFailed):
            ledger_service.account_statement(conn, seller.id, t1, t0)
        with pytest.raises(NotFound):
            ledger_service.account_statement(conn, uuid.uuid4(), t0, t1)
