"""Transaction writes: reversals, post/archive transitions, metadata updates, idempotency by
external_id, and the validation errors a caller sees; after every failure nothing was written."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger_core import (
    AlreadyReversed,
    BalanceCondition,
    BalanceConditionFailed,
    BalanceKind,
    ConditionOp,
    CurrencyMismatch,
    Direction,
    IdempotencyConflict,
    InvalidStateTransition,
    LedgerError,
    NewEntry,
    NewLedgerTransaction,
    NormalBalance,
    NotFound,
    TransactionStatus,
    Unbalanced,
    ValidationFailed,
)
from tests.ledger_core.conftest import (
    ARCHIVED,
    PENDING,
    POSTED,
    Book,
    cond,
    credit,
    debit,
    triple,
)

# ------------------------------------------------------------------ reversals


def test_reversal_flips_every_entry_and_links_both_ways(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    fees = book.account(NormalBalance.CREDIT)
    original = book.write(debit(cash, 100), credit(seller, 90), credit(fees, 10))

    reversal = book.reverse(original, description="refund", metadata={"reason": "refund"})

    assert reversal.status is POSTED
    assert reversal.reverses_id == original.id
    assert reversal.description == "refund"
    assert reversal.metadata == {"reason": "refund"}
    flipped = {(e.account_id, e.direction, e.amount) for e in reversal.entries}
    assert flipped == {
        (cash.id, Direction.CREDIT, 100),
        (seller.id, Direction.DEBIT, 90),
        (fees.id, Direction.DEBIT, 10),
    }
    assert book.txn(original).reversed_by_id == reversal.id
    stored = book.txn(reversal)
    assert stored.reverses_id == original.id
    assert {(e.account_id, e.direction, e.amount) for e in stored.entries} == flipped
    for account in (seller, cash, fees):
        assert triple(book.get(account), "posted")[2] == 0
    # The original is untouched apart from the link.
    assert book.txn(original).status is POSTED


def test_a_transaction_is_reversed_at_most_once(book: Book) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    original = book.write(debit(cash, 40), credit(seller, 40))
    reversal = book.reverse(original, external_id="refund-1")
    before = book.snapshot()

    # A retry of the same reversal returns it again and writes nothing.
    again = book.reverse(original, external_id="refund-1")
    assert again.id == reversal.id
    assert again.entries == book.txn(reversal).entries

    # Any other attempt is refused.
    with pytest.raises(AlreadyReversed) as err:
        book.reverse(original)
    assert err.value.code == "already_reversed"
    assert err.value.details["reversed_by_id"] == str(reversal.id)
    with pytest.raises(AlreadyReversed):
        book.reverse(original, external_id="refund-2")
    assert book.snapshot() == before
    assert triple(book.get(seller), "posted") == (40, 40, 0)


def test_pending_and_archived_transactions_cannot_be_reversed(book: Book) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    pending = book.write(debit(cash, 5), credit(seller, 5), status=PENDING)
    archived = book.archive(book.write(debit(cash, 6), credit(seller, 6), status=PENDING))
    before = book.snapshot()
    for txn in (pending, archived):
        with pytest.raises(InvalidStateTransition) as err:
            book.reverse(txn)
        assert err.value.code == "invalid_state_transition"
    with pytest.raises(NotFound):
        book.reverse(uuid.uuid4())
    assert book.snapshot() == before


def test_a_reversal_can_itself_be_reversed(book: Book) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    original = book.write(debit(cash, 8), credit(seller, 8))
    reversal = book.reverse(original)
    book.reverse(reversal)
    assert triple(book.get(seller), "posted") == (16, 8, 8)
    with pytest.raises(AlreadyReversed):
        book.reverse(original)


# ------------------------------------------------------------------ transitions


def test_post_and_archive_pending_transactions(book: Book) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    to_post = book.write(debit(cash, 10), credit(seller, 10), status=PENDING)
    to_archive = book.write(debit(cash, 20), credit(seller, 20), status=PENDING)
    assert to_post.posted_at is None

    posted = book.post(to_post)
    assert posted.status is POSTED and posted.posted_at is not None
    assert all(e.status is POSTED for e in posted.entries)
    archived = book.archive(to_archive)
    assert archived.status is ARCHIVED and archived.archived_at is not None
    assert all(e.status is ARCHIVED for e in archived.entries)
    assert book.txn(to_post).status is POSTED
    assert book.txn(to_archive).status is ARCHIVED
    assert triple(book.get(seller), "pending") == (10, 0, 10)


def test_invalid_transitions_are_refused_and_repeats_are_no_ops(book: Book) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    posted = book.write(debit(cash, 10), credit(seller, 10))
    archived = book.archive(book.write(debit(cash, 20), credit(seller, 20), status=PENDING))
    pending = book.write(debit(cash, 30), credit(seller, 30), status=PENDING)
    before = book.snapshot()

    with pytest.raises(InvalidStateTransition):
        book.post(archived)
    with pytest.raises(InvalidStateTransition):
        book.archive(posted)
    for txn in (posted, archived, pending):
        with pytest.raises(InvalidStateTransition), book.engine.begin() as conn:
            book.service.update_transaction(conn, txn.id, status=TransactionStatus.PENDING)
    with pytest.raises(NotFound):
        book.post(uuid.uuid4())
    with pytest.raises(NotFound):
        book.archive(uuid.uuid4())

    # Asking again for the status a transaction has changes nothing (a retried post).
    assert book.post(posted).status is POSTED
    assert book.archive(archived).status is ARCHIVED
    assert book.snapshot() == before


def test_metadata_of_a_posted_transaction_can_change_and_nothing_else_does(book: Book) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    txn = book.write(
        debit(cash, 10),
        credit(seller, 10),
        effective_at=at,
        description="order 1",
        metadata={"order": "1", "drop": "me"},
        external_id="order-1",
    )
    account_before = book.get(seller)

    with book.engine.begin() as conn:
        updated = book.service.update_transaction(
            conn, txn.id, metadata={"note": "checked", "drop": None}
        )
    assert updated.metadata == {"order": "1", "note": "checked"}
    stored = book.txn(txn)
    assert stored.metadata == {"order": "1", "note": "checked"}
    assert (stored.status, stored.effective_at, stored.description, stored.external_id) == (
        POSTED,
        at,
        "order 1",
        "order-1",
    )
    assert stored.entries == txn.entries
    account_after = book.get(seller)
    assert account_after.totals == account_before.totals
    assert account_after.lock_version == account_before.lock_version
    with pytest.raises(NotFound), book.engine.begin() as conn:
        book.service.update_transaction(conn, uuid.uuid4(), metadata={"a": "b"})


# ------------------------------------------------------------------ idempotency


def test_same_external_id_and_request_returns_the_first_transaction(book: Book) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    new = book.new(
        debit(cash, 10, cond("available", "lte", 10)),
        credit(seller, 10),
        external_id="order-7",
        metadata={"k": "v"},
        status=PENDING,
    )
    first = book.create(new)
    after_first = book.snapshot()
    again = book.create(new)
    assert again.id == first.id
    assert again.entries == book.txn(first).entries
    assert book.snapshot() == after_first

    # Still the same after it was posted: the replay returns it in its current state.
    book.post(first)
    after_post = book.snapshot()
    replay = book.create(new)
    assert replay.id == first.id and replay.status is POSTED
    assert book.snapshot() == after_post
    assert triple(book.get(seller), "posted") == (10, 0, 10)
    assert book.get(seller).lock_version == 2


@pytest.mark.parametrize(
    "change",
    [
        "amount",
        "account",
        "direction",
        "status",
        "effective_at",
        "metadata",
        "description",
        "condition",
    ],
)
def test_same_external_id_with_another_request_is_a_conflict(book: Book, change: str) -> None:
    seller = book.account()
    cash = book.account(NormalBalance.DEBIT)
    other = book.account()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    base = dict(external_id="order-9", effective_at=at, description="d", metadata={"a": 1})
    first = book.write(debit(cash, 10), credit(seller, 10), **base)
    before = book.snapshot()
    entries = [debit(cash, 10), credit(seller, 10)]
    kw = dict(base)
    if change == "amount":
        entries = [debit(cash, 11), credit(seller, 11)]
    elif change == "account":
        entries = [debit(cash, 10), credit(other, 10)]
    elif change == "direction":
        entries = [credit(cash, 10), debit(seller, 10)]
    elif change == "status":
        kw["status"] = PENDING
    elif change == "effective_at":
        kw["effective_at"] = at + timedelta(seconds=1)
    elif change == "metadata":
        kw["metadata"] = {"a": 2}
    elif change == "description":
        kw["description"] = "e"
    elif change == "condition":
        entries = [debit(cash, 10), credit(seller, 10, cond("available", "gte", 0))]
    with pytest.raises(IdempotencyConflict) as err:
        book.write(*entries, **kw)
    assert err.value.code == "idempotency_conflict"
    assert err.value.details["transaction_id"] == str(first.id)
    assert book.snapshot() == before


def test_external_ids_are_scoped_to_their_ledger(make_book: Callable[..., Book]) -> None:
    one, two = make_book(), make_book()
    txns = []
    for book in (one, two):
        a, b = book.account(), book.account(NormalBalance.DEBIT)
        txns.append(book.write(debit(b, 3), credit(a, 3), external_id="same"))
    assert txns[0].id != txns[1].id


# ------------------------------------------------------------------ validation

BAD_REQUESTS: dict[str, type[LedgerError]] = {
    "one entry": ValidationFailed,
    "no entries": ValidationFailed,
    "zero amount": ValidationFailed,
    "negative amount": ValidationFailed,
    "float amount": ValidationFailed,
    "bool amount": ValidationFailed,
    "string amount": ValidationFailed,
    "amount above bigint": ValidationFailed,
    "total above bigint": ValidationFailed,
    "unknown direction": ValidationFailed,
    "unbalanced": Unbalanced,
    "debits only": Unbalanced,
    "archived on create": ValidationFailed,
    "unknown status": ValidationFailed,
    "naive effective_at": ValidationFailed,
    "float condition amount": ValidationFailed,
    "condition amount above bigint": ValidationFailed,
    "unknown condition op": ValidationFailed,
    "unknown condition balance": ValidationFailed,
    "lock_version above bigint": ValidationFailed,
    "float lock_version": ValidationFailed,
    "account of another ledger": CurrencyMismatch,
    "unknown account": NotFound,
    "unknown ledger": NotFound,
}


def _bad_request(name: str, book: Book, foreign: Book) -> NewLedgerTransaction:
    a = book.account()
    b = book.account(NormalBalance.DEBIT)
    big = 2**62
    raw: Any = {  # deliberately ill-typed values, as a careless caller might pass them
        "float": 10.0,
        "bool": True,
        "str": "1",
        "cond": BalanceCondition(BalanceKind.AVAILABLE, ConditionOp.GTE, 0.5),  # type: ignore[arg-type]
        "op": BalanceCondition(BalanceKind.AVAILABLE, "above", 0),  # type: ignore[arg-type]
        "kind": BalanceCondition("spendable", ConditionOp.GTE, 0),  # type: ignore[arg-type]
    }
    entries: dict[str, tuple[NewEntry, ...]] = {
        "one entry": (debit(a, 10),),
        "no entries": (),
        "zero amount": (debit(b, 0), credit(a, 0)),
        "negative amount": (debit(b, -5), credit(a, -5)),
        "float amount": (debit(b, 10), NewEntry(a.id, Direction.CREDIT, raw["float"])),
        "bool amount": (debit(b, 1), NewEntry(a.id, Direction.CREDIT, raw["bool"])),
        "string amount": (debit(b, 1), NewEntry(a.id, Direction.CREDIT, raw["str"])),
        "amount above bigint": (debit(b, 2**63), credit(a, 2**63)),
        "total above bigint": (debit(b, big), debit(b, big), credit(a, big), credit(a, big)),
        "unknown direction": (debit(b, 1), NewEntry(a.id, raw["str"], 1)),
        "unbalanced": (debit(b, 10), credit(a, 9)),
        "debits only": (debit(b, 10), debit(a, 10)),
        "float condition amount": (debit(b, 1), credit(a, 1, raw["cond"])),
        "condition amount above bigint": (debit(b, 1), credit(a, 1, cond("posted", "lte", 2**63))),
        "unknown condition op": (debit(b, 1), credit(a, 1, raw["op"])),
        "unknown condition balance": (debit(b, 1), credit(a, 1, raw["kind"])),
        "lock_version above bigint": (debit(b, 1), credit(a, 1, lock_version=2**63)),
        "float lock_version": (debit(b, 1), NewEntry(a.id, Direction.CREDIT, 1, (), raw["float"])),
        "account of another ledger": (debit(b, 1), credit(foreign.account(), 1)),
        "unknown account": (debit(b, 1), credit(uuid.uuid4(), 1)),
    }
    status: Any = {"archived on create": ARCHIVED, "unknown status": "done"}.get(name, POSTED)
    naive = datetime(2026, 1, 1)  # naive on purpose
    if name == "unknown ledger":
        return dataclasses.replace(
            book.new(debit(b, 1), credit(a, 1), external_id=f"bad-{name}"), ledger_id=uuid.uuid4()
        )
    return book.new(
        *entries.get(name, (debit(b, 1), credit(a, 1))),
        status=status,
        effective_at=naive if name == "naive effective_at" else None,
        external_id=f"bad-{name}",
    )


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_invalid_requests_raise_a_clear_error_and_write_nothing(
    make_book: Callable[..., Book], name: str
) -> None:
    book, foreign = make_book(), make_book("EUR")
    new = _bad_request(name, book, foreign)
    before = book.snapshot()
    foreign_before = foreign.snapshot()
    with pytest.raises(BAD_REQUESTS[name]) as err:
        book.create(new)
    assert err.value.code == BAD_REQUESTS[name].code
    assert err.value.message
    assert book.snapshot() == before
    assert foreign.snapshot() == foreign_before
    # The external_id was not taken by the failed request.
    with pytest.raises(NotFound), book.engine.connect() as conn:
        book.service.get_transaction_by_external_id(conn, book.id, f"bad-{name}")


def test_running_totals_beyond_bigint_are_a_clear_error(book: Book) -> None:
    a = book.account()
    b = book.account(NormalBalance.DEBIT)
    big = 2**62
    book.write(debit(b, big), credit(a, big))
    before = book.snapshot()
    with pytest.raises(ValidationFailed):
        book.write(debit(b, big), credit(a, big))
    assert book.snapshot() == before


def test_error_codes_are_stable() -> None:
    assert {
        cls.__name__: cls.code
        for cls in (
            ValidationFailed,
            Unbalanced,
            CurrencyMismatch,
            NotFound,
            InvalidStateTransition,
            BalanceConditionFailed,
            IdempotencyConflict,
            AlreadyReversed,
        )
    } == {
        "ValidationFailed": "validation_failed",
        "Unbalanced": "unbalanced_transaction",
        "CurrencyMismatch": "currency_mismatch",
        "NotFound": "not_found",
        "InvalidStateTransition": "invalid_state_transition",
        "BalanceConditionFailed": "insufficient_balance",
        "IdempotencyConflict": "idempotency_conflict",
        "AlreadyReversed": "already_reversed",
    }
