"""Lists of transactions and entries: filters by account, status and effective time, and cursor
pagination that visits every item exactly once, in id order."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger_core import NormalBalance, Page, ValidationFailed
from tests.ledger_core.conftest import ARCHIVED, PENDING, POSTED, Book, credit, debit

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def every_page(fetch: Callable[..., Page[Any]], limit: int) -> list[list[Any]]:
    pages, after = [], None
    while True:
        page = fetch(after=after, limit=limit)
        pages.append(page.items)
        if page.next_after is None:
            return pages
        after = page.next_after


def test_transactions_and_entries_by_account_status_and_time(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    other = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    written = []
    for day in range(7):
        to = seller if day % 2 == 0 else other
        written.append(
            book.write(
                debit(cash, 10 + day),
                credit(to, 10 + day),
                status=PENDING if day >= 4 else POSTED,
                effective_at=T0 + timedelta(days=day),
            )
        )
    book.archive(written[6])
    service, engine = book.service, book.engine

    with engine.connect() as conn:

        def txns(**kw: Any) -> list[uuid.UUID]:
            return [t.id for t in service.list_transactions(conn, ledger_id=book.id, **kw).items]

        def entries(**kw: Any) -> list[tuple[uuid.UUID, int]]:
            page = service.list_entries(conn, ledger_id=book.id, limit=100, **kw)
            return [(e.transaction_id, e.amount) for e in page.items]

        ids = [t.id for t in written]
        assert txns(limit=100) == ids
        assert txns(account_id=seller.id) == [ids[0], ids[2], ids[4], ids[6]]
        assert txns(status=PENDING) == [ids[4], ids[5]]
        assert txns(status=ARCHIVED) == [ids[6]]
        assert txns(account_id=other.id, status=POSTED) == [ids[1], ids[3]]
        window = {
            "effective_at_gte": T0 + timedelta(days=2),
            "effective_at_lt": T0 + timedelta(days=5),
        }
        assert txns(**window) == ids[2:5]
        assert entries(account_id=seller.id, status=POSTED) == [(ids[0], 10), (ids[2], 12)]
        assert entries(account_id=cash.id, **window) == [(ids[2], 12), (ids[3], 13), (ids[4], 14)]
        assert [e.status for e in service.list_entries(conn, transaction_id=ids[6]).items] == [
            ARCHIVED,
            ARCHIVED,
        ]

        for limit in (1, 2, 3, 7, 8):
            pages = every_page(
                lambda **kw: service.list_transactions(conn, ledger_id=book.id, **kw), limit
            )
            assert [t.id for page in pages for t in page] == ids
            assert all(len(page) <= limit for page in pages)
            entry_pages = every_page(
                lambda **kw: service.list_entries(conn, account_id=cash.id, **kw), limit
            )
            assert [e.transaction_id for page in entry_pages for e in page] == ids

        with pytest.raises(ValidationFailed):
            service.list_transactions(conn, ledger_id=book.id, limit=0)
        with pytest.raises(ValidationFailed):
            service.list_entries(conn, ledger_id=book.id, effective_at_gte=datetime(2026, 1, 1))
