"""Balance conditions and expected lock_version on entries: checked atomically against the
balances the write leaves; a failure raises BalanceConditionFailed, changes nothing, and aborts
the caller's database transaction so that nothing done in it can be committed."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger_core import BalanceConditionFailed, LedgerAccount, NormalBalance
from tests.ledger_core.conftest import PENDING, Book, cond, credit, debit, triple


@pytest.fixture
def seller(book: Book) -> LedgerAccount:
    """A credit-normal seller with distinct balances: pending 120, posted 100, available 70."""
    account = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    book.write(debit(cash, 100), credit(account, 100))
    book.write(debit(account, 30), credit(cash, 30), status=PENDING)
    book.write(debit(cash, 50), credit(account, 50), status=PENDING)
    got = book.get(account)
    assert (got.balances.pending.amount, got.balances.posted.amount) == (120, 100)
    assert got.balances.available.amount == 70
    return got


def _cases() -> list[tuple[str, str, int, bool]]:
    # Debiting 10 posted leaves: available 60, pending 110, posted 90.
    cases = []
    for kind, value in (("available", 60), ("pending", 110), ("posted", 90)):
        cases += [
            (kind, "gte", value, True),
            (kind, "gte", value + 1, False),
            (kind, "gt", value - 1, True),
            (kind, "gt", value, False),
            (kind, "lte", value, True),
            (kind, "lte", value - 1, False),
            (kind, "lt", value + 1, True),
            (kind, "lt", value, False),
            (kind, "eq", value, True),
            (kind, "eq", value + 1, False),
            (kind, "eq", value - 1, False),
        ]
    return cases


@pytest.mark.parametrize(("kind", "op", "bound", "holds"), _cases())
def test_condition_on_the_resulting_balance(
    book: Book, seller: LedgerAccount, kind: str, op: str, bound: int, holds: bool
) -> None:
    payee = book.account(NormalBalance.CREDIT)
    before = book.snapshot()
    entries = (debit(seller, 10, cond(kind, op, bound)), credit(payee, 10))
    if holds:
        txn = book.write(*entries)
        assert book.txn(txn).status.value == "posted"
        got = book.get(seller)
        assert (got.balances.available.amount, got.balances.pending.amount) == (60, 110)
        assert got.balances.posted.amount == 90
        assert got.lock_version == seller.lock_version + 1
        return
    with pytest.raises(BalanceConditionFailed) as err:
        book.write(*entries)
    assert err.value.code == "insufficient_balance"
    actual = {"available": 60, "pending": 110, "posted": 90}[kind]
    assert err.value.details == {
        "account_id": str(seller.id),
        "condition": kind,
        "op": op,
        "amount": bound,
        "actual": actual,
    }
    assert book.snapshot() == before


@pytest.mark.parametrize(
    ("kind", "op", "bound", "holds"),
    [
        # The cash account (debit-normal) after the fixture and a 10 credit to it, posted:
        # pending (100+50) - (30+10) = 110, posted 100 - 10 = 90, available 100 - (30+10) = 60
        # (its pending debit of 50 is not available yet).
        ("available", "gte", 60, True),
        ("available", "gte", 61, False),
        ("pending", "eq", 110, True),
        ("pending", "lt", 110, False),
        ("posted", "eq", 90, True),
        ("posted", "gt", 90, False),
    ],
)
def test_condition_on_a_debit_normal_account(
    book: Book, seller: LedgerAccount, kind: str, op: str, bound: int, holds: bool
) -> None:
    cash = next(
        a for a in _accounts(book) if a.normal_balance is NormalBalance.DEBIT and a.id != seller.id
    )
    other = book.account(NormalBalance.DEBIT)
    before = book.snapshot()
    entries = (credit(cash, 10, cond(kind, op, bound)), debit(other, 10))
    if holds:
        book.write(*entries)
        assert triple(book.get(cash), "available") == (40, 100, 60)
    else:
        with pytest.raises(BalanceConditionFailed):
            book.write(*entries)
        assert book.snapshot() == before


def _accounts(book: Book) -> list[LedgerAccount]:
    with book.engine.connect() as conn:
        return book.service.list_accounts(conn, ledger_id=book.id, limit=100).items


def test_pending_debits_count_against_available_at_once(book: Book) -> None:
    """The payout rule: a pending debit is written only if available stays >= 0."""
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    transit = book.account(NormalBalance.DEBIT)
    book.write(debit(cash, 100), credit(seller, 100))
    book.write(debit(cash, 1000), credit(seller, 1000), status=PENDING)  # not available yet

    def payout(amount: int) -> None:
        book.write(
            debit(seller, amount, cond("available", "gte", 0)),
            credit(transit, amount),
            status=PENDING,
        )

    payout(60)
    with pytest.raises(BalanceConditionFailed) as err:
        payout(41)
    assert err.value.details["actual"] == -1
    payout(40)
    with pytest.raises(BalanceConditionFailed):
        payout(1)
    assert triple(book.get(seller), "available") == (100, 100, 0)


def test_several_conditions_must_all_hold(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    book.write(debit(cash, 100), credit(seller, 100))
    before = book.snapshot()
    with pytest.raises(BalanceConditionFailed) as err:
        book.write(
            debit(seller, 10, cond("available", "gte", 0), cond("posted", "lte", 50)),
            credit(cash, 10, cond("posted", "eq", 90)),
        )
    assert err.value.details["condition"] == "posted"
    assert err.value.details["account_id"] == str(seller.id)
    assert book.snapshot() == before
    book.write(
        debit(seller, 10, cond("available", "gte", 0), cond("posted", "lte", 90)),
        credit(cash, 10, cond("posted", "eq", 90)),
    )
    assert triple(book.get(seller), "posted") == (100, 10, 90)


def test_expected_lock_version(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    book.write(debit(cash, 5), credit(seller, 5))
    version = book.get(seller).lock_version
    assert version == 1

    book.write(debit(seller, 1, lock_version=version), credit(cash, 1))
    assert book.get(seller).lock_version == version + 1
    before = book.snapshot()
    # A writer that read the account before that write is refused: the account moved on.
    for stale in (version, version + 2, 0):
        with pytest.raises(BalanceConditionFailed) as err:
            book.write(debit(seller, 1, lock_version=stale), credit(cash, 1))
        assert err.value.details == {
            "account_id": str(seller.id),
            "condition": "lock_version",
            "expected": stale,
            "actual": version + 1,
        }
    assert book.snapshot() == before
    # lock_version on both sides, current: passes.
    cash_version = book.get(cash).lock_version
    book.write(
        debit(seller, 1, lock_version=version + 1), credit(cash, 1, lock_version=cash_version)
    )
    assert book.get(seller).lock_version == version + 2


def test_a_failed_condition_aborts_the_database_transaction(book: Book) -> None:
    """Earlier writes in the same database transaction cannot be committed either."""
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    book.write(debit(cash, 10), credit(seller, 10))
    before = book.snapshot()
    with book.engine.connect() as conn:
        conn.begin()
        book.service.create_transaction(conn, book.new(debit(cash, 7), credit(seller, 7)))
        with pytest.raises(BalanceConditionFailed):
            book.service.create_transaction(
                conn, book.new(debit(seller, 100, cond("available", "gte", 0)), credit(cash, 100))
            )
        with pytest.raises(DBAPIError) as err:
            conn.execute(text("SELECT 1"))
        assert getattr(err.value.orig, "sqlstate", None) == "25P02"  # in_failed_sql_transaction
        conn.commit()  # the server answers ROLLBACK: nothing of this transaction survives
    assert book.snapshot() == before
    assert triple(book.get(seller), "posted") == (10, 0, 10)


def test_an_idempotent_replay_does_not_recheck_conditions(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    book.write(debit(cash, 10), credit(seller, 10))
    new = book.new(
        debit(seller, 10, cond("available", "gte", 0)), credit(cash, 10), external_id="payout-1"
    )
    first = book.create(new)
    # The condition would fail now (available is 0), but the replay only returns the original.
    assert book.create(new).id == first.id
    assert triple(book.get(seller), "available") == (10, 10, 0)
