"""Balance semantics (DESIGN.md, "Ledger model"): the pending, posted and available views, each
with credits, debits and amount, across pending, posted, archived and reversed transactions, for
credit-normal and debit-normal accounts; lock_version; balances as of a past effective_at."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ledger_core import LedgerAccount, LedgerTransaction, NormalBalance, NotFound, ValidationFailed
from tests.ledger_core.conftest import PENDING, Book, credit, debit, triple

View = tuple[int, int, int]  # (credits, debits, amount)


def views(account: LedgerAccount) -> tuple[View, View, View]:
    """(pending, posted, available), each (credits, debits, amount)."""
    return (triple(account, "pending"), triple(account, "posted"), triple(account, "available"))


def test_new_account_has_zero_balances(book: Book) -> None:
    for normal in NormalBalance:
        account = book.get(book.account(normal))
        assert views(account) == ((0, 0, 0), (0, 0, 0), (0, 0, 0))
        assert account.lock_version == 0
        assert account.normal_balance is normal
        assert account.currency == "USD"
        assert account.currency_exponent == 2


def test_balance_views_through_the_life_of_transactions(book: Book) -> None:
    """A seller (credit-normal) and the platform's cash (debit-normal), step by step."""
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)

    # 1. An earning, pending: only the pending view moves.
    earning = book.write(debit(cash, 100), credit(seller, 100), status=PENDING)
    assert views(book.get(seller)) == ((100, 0, 100), (0, 0, 0), (0, 0, 0))
    assert views(book.get(cash)) == ((0, 100, 100), (0, 0, 0), (0, 0, 0))
    assert book.get(seller).lock_version == book.get(cash).lock_version == 1

    # 2. Posted: posted and available follow.
    book.post(earning)
    assert views(book.get(seller)) == ((100, 0, 100), (100, 0, 100), (100, 0, 100))
    assert views(book.get(cash)) == ((0, 100, 100), (0, 100, 100), (0, 100, 100))
    assert book.get(seller).lock_version == book.get(cash).lock_version == 2

    # 3. A payout in flight: a pending debit on the seller holds back available at once.
    payout = book.write(debit(seller, 30), credit(cash, 30), status=PENDING)
    assert views(book.get(seller)) == ((100, 30, 70), (100, 0, 100), (100, 30, 70))
    # Debit-normal: pending credits count against available, pending debits do not count for it.
    assert views(book.get(cash)) == ((30, 100, 70), (0, 100, 100), (30, 100, 70))
    assert book.get(seller).lock_version == 3

    # 4. The payout failed: archived entries count nowhere.
    book.archive(payout)
    assert views(book.get(seller)) == ((100, 0, 100), (100, 0, 100), (100, 0, 100))
    assert views(book.get(cash)) == ((0, 100, 100), (0, 100, 100), (0, 100, 100))
    assert book.get(seller).lock_version == book.get(cash).lock_version == 4

    # 5. Another pending earning: pending credits are not available to a credit-normal account,
    #    pending debits are not available to a debit-normal one.
    book.write(debit(cash, 50), credit(seller, 50), status=PENDING)
    assert views(book.get(seller)) == ((150, 0, 150), (100, 0, 100), (100, 0, 100))
    assert views(book.get(cash)) == ((0, 150, 150), (0, 100, 100), (0, 100, 100))

    # 6. The first earning is refunded after posting: a reversal debits the seller.
    book.reverse(earning)
    assert views(book.get(seller)) == ((150, 100, 50), (100, 100, 0), (100, 100, 0))
    assert views(book.get(cash)) == ((100, 150, 50), (100, 100, 0), (100, 100, 0))
    assert book.get(seller).lock_version == book.get(cash).lock_version == 6


def test_posted_payout_and_negative_balances(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    transit = book.account(NormalBalance.DEBIT)
    cash = book.account(NormalBalance.DEBIT)
    book.write(debit(cash, 500), credit(seller, 500))
    payout = book.write(debit(seller, 200), credit(transit, 200), status=PENDING)
    book.post(payout)
    assert views(book.get(seller)) == ((500, 200, 300), (500, 200, 300), (500, 200, 300))
    assert views(book.get(transit)) == ((200, 0, -200), (200, 0, -200), (200, 0, -200))
    # Without a condition a balance may go negative (a reversal after a payout, say).
    book.write(debit(seller, 400), credit(cash, 400))
    assert views(book.get(seller)) == ((500, 600, -100), (500, 600, -100), (500, 600, -100))
    assert views(book.get(cash)) == ((400, 500, 100), (400, 500, 100), (400, 500, 100))


def test_several_entries_on_one_account_in_one_transaction(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    revenue = book.account(NormalBalance.CREDIT)
    book.write(
        credit(seller, 70),
        debit(cash, 100),
        credit(revenue, 30),
        debit(seller, 5),
        credit(seller, 5),
    )
    assert views(book.get(seller)) == ((75, 5, 70), (75, 5, 70), (75, 5, 70))
    assert views(book.get(revenue)) == ((30, 0, 30), (30, 0, 30), (30, 0, 30))
    # The version grew, and a writer that read it before can still expect it.
    version = book.get(seller).lock_version
    assert version >= 1
    book.write(debit(seller, 1, lock_version=version), credit(revenue, 1))
    assert book.get(seller).lock_version > version


def test_lock_version_grows_only_with_balance_changes(book: Book) -> None:
    a = book.account(NormalBalance.CREDIT)
    b = book.account(NormalBalance.DEBIT)
    bystander = book.account(NormalBalance.CREDIT)
    versions = [book.get(a).lock_version]
    txn = book.write(debit(b, 1), credit(a, 1), status=PENDING)
    versions.append(book.get(a).lock_version)
    book.post(txn)
    versions.append(book.get(a).lock_version)
    book.post(txn)  # a no-op: the balances did not change
    versions.append(book.get(a).lock_version)
    with book.engine.begin() as conn:
        book.service.update_transaction(conn, txn.id, metadata={"note": "x"})
        book.service.update_account_metadata(conn, a.id, {"tier": "gold"})
    versions.append(book.get(a).lock_version)
    book.reverse(txn)
    versions.append(book.get(a).lock_version)
    other = book.write(debit(b, 2), credit(a, 2), status=PENDING)
    book.archive(other)
    versions.append(book.get(a).lock_version)
    assert versions == [0, 1, 2, 2, 2, 3, 5]
    assert book.get(b).lock_version == 5
    assert book.get(bystander).lock_version == 0


def test_as_of_balances_follow_effective_at(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    now = datetime.now(UTC)
    day = timedelta(days=1)

    def earn(amount: int, at: datetime, **kw: Any) -> LedgerTransaction:
        return book.write(debit(cash, amount), credit(seller, amount), effective_at=at, **kw)

    first = earn(100, now - 10 * day)
    earn(20, now - 2 * day)
    earn(7, now - 5 * day, status=PENDING)
    book.archive(earn(1000, now - 3 * day, status=PENDING))
    earn(3, now + 5 * day)  # effective in the future

    # The O(1) balances count every non-archived entry, whatever its effective_at.
    assert views(book.get(seller)) == ((130, 0, 130), (123, 0, 123), (123, 0, 123))

    def at(when: datetime) -> LedgerAccount:
        return book.get(seller, as_of=when)

    assert views(at(now - 20 * day)) == ((0, 0, 0), (0, 0, 0), (0, 0, 0))
    # Inclusive of an entry effective exactly at the instant asked for.
    assert views(at(first.effective_at)) == ((100, 0, 100), (100, 0, 100), (100, 0, 100))
    assert views(at(now - 4 * day)) == ((107, 0, 107), (100, 0, 100), (100, 0, 100))
    # The archived earning (effective 3 days ago) never counts.
    assert views(at(now - 1 * day)) == ((127, 0, 127), (120, 0, 120), (120, 0, 120))
    assert views(at(now + 10 * day)) == ((130, 0, 130), (123, 0, 123), (123, 0, 123))
    # The debit-normal side mirrors it.
    assert views(book.get(cash, as_of=now - 4 * day)) == (
        (0, 107, 107),
        (0, 100, 100),
        (0, 100, 100),
    )
    # An as-of in another time zone is the same instant.
    tokyo = (now - 4 * day).astimezone(ZoneInfo("Asia/Tokyo"))
    assert triple(at(tokyo), "pending") == (107, 0, 107)

    # A reversal effective now undoes the earning from now on, not in the past.
    book.reverse(first)
    assert triple(at(now - 4 * day), "posted") == (100, 0, 100)
    assert triple(at(datetime.now(UTC) + timedelta(seconds=1)), "posted") == (120, 100, 20)
    assert triple(book.get(seller), "posted") == (123, 100, 23)


def test_as_of_requires_a_time_zone_and_a_known_account(book: Book) -> None:
    seller = book.account()
    with pytest.raises(ValidationFailed):
        book.get(seller, as_of=datetime(2026, 1, 1))
    with pytest.raises(NotFound):
        book.get(uuid.uuid4())
