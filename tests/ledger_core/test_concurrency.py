"""Concurrent writers on a real PostgreSQL: no deadlock surfaces to callers, no update is lost,
running totals equal the entries, the ledger sums to zero, and a balance protected by a condition
never goes below its bound, not even for an instant (replayed from the order of lock_versions)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from ledger_core import (
    AlreadyReversed,
    BalanceConditionFailed,
    InvalidStateTransition,
    LedgerService,
    NewEntry,
    NormalBalance,
)
from tests.helpers import drifted_accounts
from tests.ledger_core.conftest import PENDING, POSTED, Book, cond, credit, debit, triple

THREADS = 12
OPS_PER_THREAD = 150


@dataclass
class HotWrite:
    """One committed write that changed the hot account: the lock_version it produced and what
    it did to the hot account's running totals (pending_debits, pending_credits, posted_debits,
    posted_credits)."""

    version: int
    delta: tuple[int, int, int, int]
    conditioned: bool
    available_seen: int


@dataclass
class Outcome:
    hot_writes: list[HotWrite] = field(default_factory=list)
    touches: Counter[uuid.UUID] = field(default_factory=Counter)
    condition_failures: int = 0
    successes: int = 0
    errors: list[BaseException] = field(default_factory=list)


def check_ledger_integrity(engine: Engine, ledger_id: uuid.UUID) -> None:
    """Every account's running totals equal the sums of its entries, and per status the
    ledger's debits equal its credits."""
    with engine.connect() as conn:
        mismatched = drifted_accounts(conn, ledger_id)
        assert mismatched == []
        sums = conn.execute(
            text(
                """
                SELECT t.status,
                       coalesce(sum(e.amount) FILTER (WHERE e.direction = 'debit'), 0),
                       coalesce(sum(e.amount) FILTER (WHERE e.direction = 'credit'), 0)
                  FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                 WHERE e.ledger_id = :l AND t.status <> 'archived'
                 GROUP BY t.status
                """
            ),
            {"l": ledger_id},
        ).all()
        for status, debits, credits in sums:
            assert debits == credits, status


def test_many_writers_through_one_hot_account(book: Book) -> None:
    engine, service = book.engine, book.service
    hot = book.account(NormalBalance.CREDIT, name="hot seller")
    cash = book.account(NormalBalance.DEBIT, name="cash")
    transit = book.account(NormalBalance.DEBIT, name="payouts in transit")
    fees = book.account(NormalBalance.CREDIT, name="fees")
    other = book.account(NormalBalance.CREDIT, name="another seller")
    accounts = [hot, cash, transit, fees, other]
    book.write(debit(cash, 5_000), credit(hot, 5_000))
    start = book.get(hot)
    outcome = Outcome(touches=Counter({hot.id: 1, cash.id: 1}))
    lock = threading.Lock()

    def hot_available(conn: Any) -> tuple[int, int]:
        got = service.get_account(conn, hot.id)
        return got.lock_version, got.balances.available.amount

    def run(seed: int) -> None:
        rng = random.Random(seed)
        pending: list[tuple[uuid.UUID, int]] = []  # this thread's pending payouts
        for _ in range(OPS_PER_THREAD):
            roll = rng.random()
            amount = rng.randint(1, 200)
            entries: list[NewEntry]
            delta: tuple[int, int, int, int]
            finish: tuple[uuid.UUID, int, bool] | None = None
            conditioned = False
            status = POSTED
            if roll < 0.3:  # an earning, part of it a fee
                fee = rng.randint(0, amount - 1)
                entries = [debit(cash, amount), credit(hot, amount - fee)]
                if fee:
                    entries.append(credit(fees, fee))
                delta = (0, 0, 0, amount - fee)
            elif roll < 0.7:  # a payout, pending or posted, only if available stays >= 0
                status = PENDING if rng.random() < 0.6 else POSTED
                amount = rng.randint(50, 600)
                entries = [debit(hot, amount, cond("available", "gte", 0)), credit(transit, amount)]
                delta = (amount, 0, 0, 0) if status is PENDING else (0, 0, amount, 0)
                conditioned = True
            elif roll < 0.85:  # money moves between two sellers through the hot one
                entries = [debit(other, amount), credit(hot, amount)]
                if rng.random() < 0.5:
                    entries = [
                        debit(hot, amount, cond("available", "gte", 0)),
                        credit(other, amount),
                    ]
                    conditioned = True
                    delta = (0, 0, amount, 0)
                else:
                    delta = (0, 0, 0, amount)
            elif pending:  # the rail answered: paid (post) or failed (archive)
                txn_id, amount = pending.pop(rng.randrange(len(pending)))
                finish = (txn_id, amount, rng.random() < 0.5)
                entries = []
                delta = (-amount, 0, amount, 0) if finish[2] else (-amount, 0, 0, 0)
            else:
                continue
            rng.shuffle(entries)
            try:
                with engine.begin() as conn:
                    if finish is not None:
                        txn = (
                            service.post_transaction(conn, finish[0])
                            if finish[2]
                            else service.archive_transaction(conn, finish[0])
                        )
                    else:
                        txn = service.create_transaction(conn, book.new(*entries, status=status))
                    # Read inside the write's own database transaction, the hot row still
                    # locked by it: exactly the state this write left.
                    version, available = hot_available(conn)
            except BalanceConditionFailed:
                with lock:
                    outcome.condition_failures += 1
                continue
            except Exception as exc:
                with lock:
                    outcome.errors.append(exc)
                continue
            with lock:
                outcome.successes += 1
                outcome.hot_writes.append(HotWrite(version, delta, conditioned, available))
                outcome.touches.update({e.account_id for e in txn.entries})
            if status is PENDING and finish is None:
                pending.append((txn.id, amount))

    began = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(run, range(THREADS)))
    elapsed = time.monotonic() - began

    # Nothing but condition failures reached the callers: no deadlock, no serialization error.
    assert outcome.errors == []
    assert outcome.successes > THREADS * OPS_PER_THREAD // 2
    assert outcome.condition_failures > 0, "the test should exercise refused payouts"
    assert elapsed < 60

    # No lost update: the hot account's versions are exactly 1..N after the start, one per write.
    writes = sorted(outcome.hot_writes, key=lambda w: w.version)
    assert [w.version for w in writes] == list(
        range(start.lock_version + 1, start.lock_version + 1 + len(writes))
    )
    # Replayed in that order, the available balance never dipped below zero, and each write saw
    # exactly the balance the replay predicts.
    pd, pc, sd, sc = (
        start.totals.pending_debits,
        start.totals.pending_credits,
        start.totals.posted_debits,
        start.totals.posted_credits,
    )
    for w in writes:
        pd, pc, sd, sc = pd + w.delta[0], pc + w.delta[1], sd + w.delta[2], sc + w.delta[3]
        available = sc - (pd + sd)
        assert available == w.available_seen
        assert available >= 0
    final = book.get(hot)
    assert (pd, pc, sd, sc) == (
        final.totals.pending_debits,
        final.totals.pending_credits,
        final.totals.posted_debits,
        final.totals.posted_credits,
    )
    assert final.balances.available.amount >= 0

    # lock_version counts the balance-changing writes of every account (one entry per account
    # and transaction here), and the totals equal the entries.
    for account in accounts:
        assert book.get(account).lock_version == outcome.touches[account.id], account.name
    check_ledger_integrity(engine, book.id)


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same instant; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def test_post_and_archive_of_the_same_transaction_race(book: Book) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    engine, service = book.engine, book.service

    def in_txn(op: Callable[..., Any], txn_id: uuid.UUID) -> Callable[[], Any]:
        def call() -> Any:
            with engine.begin() as conn:
                return op(conn, txn_id)

        return call

    posted_total = 0
    for amount in range(1, 13):
        txn = book.write(debit(cash, amount), credit(seller, amount), status=PENDING)
        results = _race(
            in_txn(service.post_transaction, txn.id), in_txn(service.archive_transaction, txn.id)
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1 and len(failures) == 1, results
        assert isinstance(failures[0], InvalidStateTransition)
        assert book.txn(txn).status is winners[0].status
        if winners[0].status is POSTED:
            posted_total += amount
    got = book.get(seller)
    assert triple(got, "posted") == (posted_total, 0, posted_total)
    assert triple(got, "pending") == (posted_total, 0, posted_total)
    # One write per transaction, then exactly one transition each.
    assert got.lock_version == 24
    check_ledger_integrity(engine, book.id)


def test_concurrent_reversals_and_idempotent_creates(
    book: Book, ledger_service: LedgerService
) -> None:
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    engine = book.engine

    def reverse(txn_id: uuid.UUID, external_id: str | None) -> Callable[[], Any]:
        def call() -> Any:
            with engine.begin() as conn:
                return ledger_service.reverse_transaction(conn, txn_id, external_id=external_id)

        return call

    def create(external_id: str) -> Callable[[], Any]:
        def call() -> Any:
            with engine.begin() as conn:
                return ledger_service.create_transaction(
                    conn, book.new(debit(cash, 5), credit(seller, 5), external_id=external_id)
                )

        return call

    for i in range(5):
        txn = book.write(debit(cash, 10), credit(seller, 10))
        # Different callers: one reversal, the other is told it was already reversed.
        results = _race(reverse(txn.id, None), reverse(txn.id, None))
        assert sorted(type(r).__name__ for r in results) == ["AlreadyReversed", "LedgerTransaction"]
        assert isinstance(next(r for r in results if isinstance(r, BaseException)), AlreadyReversed)
        # The same caller retrying: both get the one reversal.
        txn = book.write(debit(cash, 10), credit(seller, 10))
        results = _race(reverse(txn.id, f"rev-{i}"), reverse(txn.id, f"rev-{i}"))
        assert not any(isinstance(r, BaseException) for r in results), results
        assert results[0].id == results[1].id
        # Two identical creates at once: written once, both get it.
        results = _race(create(f"order-{i}"), create(f"order-{i}"), create(f"order-{i}"))
        assert not any(isinstance(r, BaseException) for r in results), results
        assert len({r.id for r in results}) == 1
    got = book.get(seller)
    # Per round: 10 + 10 earned and reversed, 5 earned once.
    assert triple(got, "posted") == (5 * (20 + 5), 5 * 20, 25)
    check_ledger_integrity(engine, book.id)
