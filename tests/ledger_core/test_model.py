"""Property-based test: random sequences of writes against ledger_core and against a small
in-memory model of the ledger (DESIGN.md's formulas, written out independently); after every
step the three balances and the lock_version of every account agree with the model."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine

from ledger_core import (
    AlreadyReversed,
    BalanceConditionFailed,
    InvalidStateTransition,
    LedgerService,
    NormalBalance,
)
from tests.ledger_core.conftest import PENDING, POSTED, Book, cond, credit, debit

OPS = ("gte", "gt", "lte", "lt", "eq")
KINDS = ("available", "pending", "posted")
NORMALS = (NormalBalance.CREDIT, NormalBalance.CREDIT, NormalBalance.DEBIT, NormalBalance.DEBIT)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass
class ModelAccount:
    normal: NormalBalance
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, direction)
    version: int = 0
    # A write with several entries on this account grows the version by at least 1 and at most
    # one per entry (the exact step is the implementation's); the check then adopts the actual.
    slack: int = 0

    def view(self, kind: str) -> int:
        t = self.totals
        if self.normal is NormalBalance.CREDIT:
            normal, contra = "credit", "debit"
        else:
            normal, contra = "debit", "credit"
        posted_n, posted_c = t["posted", normal], t["posted", contra]
        pending_n, pending_c = t["pending", normal], t["pending", contra]
        if kind == "posted":
            return posted_n - posted_c
        if kind == "pending":
            return (posted_n + pending_n) - (posted_c + pending_c)
        return posted_n - (posted_c + pending_c)  # available


@dataclass
class ModelTxn:
    status: str
    entries: list[tuple[int, str, int]]  # (account index, direction, amount)
    reversed: bool = False


def holds(value: int, op: str, bound: int) -> bool:
    return {
        "gte": value >= bound,
        "gt": value > bound,
        "lte": value <= bound,
        "lt": value < bound,
        "eq": value == bound,
    }[op]


entry_pairs = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 500)),
    min_size=1,
    max_size=3,
)
# Mostly no condition; bounds near the balances reached, so that both outcomes happen.
condition = st.one_of(
    st.none(),
    st.none(),
    st.tuples(
        st.integers(0, 20), st.sampled_from(KINDS), st.sampled_from(OPS), st.integers(-300, 300)
    ),
)
# An expected lock_version on one entry: mostly the current one, sometimes stale or ahead.
lock_guess = st.one_of(st.none(), st.tuples(st.integers(0, 20), st.sampled_from([0, 0, 0, -1, 1])))


class LedgerMachine(RuleBasedStateMachine):
    engine: Engine
    service: LedgerService

    @initialize()
    def start(self) -> None:
        self.book = Book(self.engine, self.service)
        self.accounts = [self.book.account(n) for n in NORMALS]
        self.model = [ModelAccount(n) for n in NORMALS]
        self.txns: dict[uuid.UUID, ModelTxn] = {}

    # -------------------------------------------------------------- helpers

    def _apply(self, entries: list[tuple[int, str, int]], status: str, sign: int) -> None:
        for index, direction, amount in entries:
            self.model[index].totals[status, direction] += sign * amount

    def _bump(self, entries: list[tuple[int, str, int]], *, per_account: bool = False) -> None:
        for index, count in Counter(e[0] for e in entries).items():
            self.model[index].version += 1
            if not per_account:
                self.model[index].slack += count - 1

    def _ids(self, status: str, reversed_: bool | None = None) -> list[uuid.UUID]:
        return [
            i
            for i, t in self.txns.items()
            if t.status == status and (reversed_ is None or t.reversed == reversed_)
        ]

    # -------------------------------------------------------------- rules

    @rule(
        pairs=entry_pairs,
        pending=st.booleans(),
        condition=condition,
        lock=lock_guess,
        days=st.integers(-30, 30),
    )
    def create(
        self,
        pairs: list[tuple[int, int, int]],
        pending: bool,
        condition: tuple[int, str, str, int] | None,
        lock: tuple[int, int] | None,
        days: int,
    ) -> None:
        entries: list[tuple[int, str, int]] = []
        for debit_index, credit_index, amount in pairs:
            entries += [(debit_index, "debit", amount), (credit_index, "credit", amount)]
        status = "pending" if pending else "posted"
        new_entries = []
        expect_ok = True
        conditioned = condition[0] % len(entries) if condition else None
        locked = lock[0] % len(entries) if lock else None
        # The model's balances after the write, to judge the condition.
        self._apply(entries, status, +1)
        for i, (index, direction, amount) in enumerate(entries):
            make = debit if direction == "debit" else credit
            conditions = []
            if condition is not None and i == conditioned:
                _, kind, op, bound = condition
                conditions.append(cond(kind, op, bound))
                expect_ok &= holds(self.model[index].view(kind), op, bound)
            lock_version = None
            if lock is not None and i == locked:
                # The version read before this write: current, or stale / from the future.
                lock_version = self.model[index].version + lock[1]
                expect_ok &= lock[1] == 0
            new_entries.append(
                make(self.accounts[index], amount, *conditions, lock_version=lock_version)
            )
        new = self.book.new(
            *new_entries,
            status=PENDING if pending else POSTED,
            effective_at=datetime.now(UTC) + timedelta(days=days),
        )
        if expect_ok:
            txn = self.book.create(new)
            event("written with a condition" if condition or lock else "written")
            self.txns[txn.id] = ModelTxn(status, entries)
            self._bump(entries)
        else:
            self._apply(entries, status, -1)
            try:
                self.book.create(new)
            except BalanceConditionFailed:
                event("condition refused the write")
            else:
                raise AssertionError("the write should have failed its condition")

    @precondition(lambda self: any(t.status == "pending" for t in self.txns.values()))
    @rule(data=st.data(), post=st.booleans())
    def settle(self, data: st.DataObject, post: bool) -> None:
        txn_id = data.draw(st.sampled_from(self._ids("pending")))
        txn = self.txns[txn_id]
        self._apply(txn.entries, "pending", -1)
        if post:
            self._apply(txn.entries, "posted", +1)
            assert self.book.post(txn_id).status is POSTED
        else:
            assert self.book.archive(txn_id).status.value == "archived"
        txn.status = "posted" if post else "archived"
        self._bump(txn.entries, per_account=True)

    @precondition(lambda self: any(t.status != "pending" for t in self.txns.values()))
    @rule(data=st.data())
    def settle_again(self, data: st.DataObject) -> None:
        """Asking again for the status it has is a no-op; the other transition is refused."""
        settled = [i for i, t in self.txns.items() if t.status != "pending"]
        txn_id = data.draw(st.sampled_from(settled))
        status = self.txns[txn_id].status
        same, other = (
            (self.book.post, self.book.archive)
            if status == "posted"
            else (self.book.archive, self.book.post)
        )
        assert same(txn_id).status.value == status
        try:
            other(txn_id)
        except InvalidStateTransition:
            pass
        else:
            raise AssertionError(f"a {status} transaction changed status")

    @precondition(lambda self: any(t.status == "posted" for t in self.txns.values()))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        txn_id = data.draw(st.sampled_from(self._ids("posted")))
        txn = self.txns[txn_id]
        if txn.reversed:
            try:
                self.book.reverse(txn_id)
            except AlreadyReversed:
                return
            raise AssertionError("a transaction was reversed twice")
        reversal = self.book.reverse(txn_id)
        flipped = [(i, "credit" if d == "debit" else "debit", a) for i, d, a in txn.entries]
        index = {a.id: i for i, a in enumerate(self.accounts)}
        got = sorted((index[e.account_id], str(e.direction), e.amount) for e in reversal.entries)
        assert got == sorted(flipped)
        txn.reversed = True
        self.txns[reversal.id] = ModelTxn("posted", flipped)
        self._apply(flipped, "posted", +1)
        self._bump(flipped)

    @precondition(lambda self: any(t.status == "pending" for t in self.txns.values()))
    @rule(data=st.data())
    def reverse_pending(self, data: st.DataObject) -> None:
        txn_id = data.draw(st.sampled_from(self._ids("pending")))
        try:
            self.book.reverse(txn_id)
        except InvalidStateTransition:
            return
        raise AssertionError("a pending transaction was reversed")

    # -------------------------------------------------------------- invariants

    @invariant()
    def balances_match_the_model(self) -> None:
        with self.engine.connect() as conn:
            for account, model in zip(self.accounts, self.model, strict=True):
                got = self.service.get_account(conn, account.id)
                for kind in KINDS:
                    view = got.balances.of(kind)  # type: ignore[arg-type]
                    assert view.amount == model.view(kind), (kind, account.normal_balance)
                    assert view.amount == (
                        view.credits - view.debits
                        if model.normal is NormalBalance.CREDIT
                        else view.debits - view.credits
                    )
                assert model.version <= got.lock_version <= model.version + model.slack
                model.version, model.slack = got.lock_version, 0
                # Summed from the entries (as of a far future instant), the same balances.
                summed = self.service.get_account(conn, account.id, as_of=FAR_FUTURE)
                assert summed.totals == got.totals


def test_ledger_matches_its_model(engine: Engine, ledger_service: LedgerService) -> None:
    LedgerMachine.engine = engine
    LedgerMachine.service = ledger_service
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
            # Shrinking replays whole sequences of database writes and can take minutes; the
            # failing sequence (at most stateful_step_count steps) is printed unshrunk.
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
        ),
    )
