"""Property: whatever happens to a seller's money (earnings, holds, reserves, refunds, disputes
won and lost, adjustments through the ledger API, pending debits, and payouts of every method
that are paid, failed, cancelled or returned, in any order), every payout's lines add up to its
amount, and right after each reservation every posted entry of the seller is in exactly one live
item: each entry is paid out once, none is lost. (The reservation itself checks its lines
against the ledger's available balance, so a miscounted line fails the example there.)

25 examples by default, a few seconds; ``ITEMS_EXAMPLES=1000`` searches longer
(``--hypothesis-show-statistics`` shows which lines and refusals the examples reached)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from ledger_core import (
    Direction,
    LedgerError,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
)
from marketplace import DisputeOutcome, InstantTerms, Marketplace, Payouts, PayoutState, Refunds
from marketplace.types import PlatformAccount
from tests.payouts.items_helpers import (
    adjust,
    assert_each_entry_once,
    deadline,
    earn,
    items_of,
    new_seller,
)

PAYOUTS = Payouts(Marketplace(), InstantTerms(fee_bp=150, fee_minimum=50))
REFUNDS = Refunds(PAYOUTS.marketplace)

amounts = st.integers(min_value=1, max_value=20_000)
percents = st.integers(min_value=1, max_value=100)
picks = st.integers(0, 5)
payout_ops = st.tuples(st.just("payout"), st.sampled_from(["all", "part", "instant"]), percents)
operations = st.one_of(
    st.tuples(st.just("earn"), amounts, st.integers(0, 30)),
    st.tuples(st.just("earn"), amounts, st.integers(0, 30)),
    st.tuples(st.just("hold"), amounts),
    st.tuples(st.just("post_hold")),
    st.tuples(st.just("refund"), picks, percents),
    st.tuples(st.just("dispute"), amounts),
    st.tuples(st.just("resolve"), st.sampled_from(["won", "lost"])),
    st.tuples(st.just("release_reserve")),
    st.tuples(st.just("adjust"), st.integers(1, 5_000), st.booleans()),
    st.tuples(st.just("pending_debit"), amounts),
    payout_ops,
    payout_ops,
    payout_ops,
    st.tuples(st.just("pay"), picks),
    st.tuples(st.just("pay"), picks),
    st.tuples(st.just("fail"), picks),
    st.tuples(st.just("cancel"), picks),
    st.tuples(st.just("return"), picks),
)


class Seller:
    def __init__(self, conn: Connection, reserve_bp: int | None) -> None:
        self.id = f"prop-{uuid.uuid4().hex[:12]}"
        self.n = 0
        self.orders: list[str] = []
        self.on_hold: list[str] = []
        self.disputes: list[str] = []
        self.payouts: list[str] = []
        new_seller(conn, PAYOUTS, self.id, reserve_bp=reserve_bp)

    def key(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}-{self.id}"

    def payout(self, conn: Connection, index: int, *states: PayoutState) -> str | None:
        """The index-th (modulo) of the seller's payouts in one of ``states``."""
        found = [p for p in self.payouts if PAYOUTS.get_payout(conn, p).status in states]
        return found[index % len(found)] if found else None


def apply(conn: Connection, seller: Seller, op: tuple[Any, ...]) -> None:
    m = PAYOUTS.marketplace
    name = op[0]
    if name == "earn":
        order = seller.key("o")
        earn(conn, PAYOUTS, seller.id, order, op[1], op[1] * op[2] // 100)
        seller.orders.append(order)
    elif name == "hold":
        order = seller.key("h")
        m.book_earning(conn, seller_id=seller.id, order_id=order, amount=op[1])
        seller.on_hold.append(order)
    elif name == "post_hold" and seller.on_hold:
        order = seller.on_hold.pop(0)
        m.post_earning(conn, seller.id, order)
        seller.orders.append(order)
    elif name == "refund" and seller.orders:
        order = seller.orders[op[1] % len(seller.orders)]
        row = m.earning_row(conn, seller.id, order)
        assert row is not None
        left = row.amount - row.refunded_amount
        REFUNDS.refund_earning(
            conn,
            refund_id=seller.key("r"),
            seller_id=seller.id,
            order_id=order,
            amount=max(left * op[2] // 100, 1),
        )
    elif name == "dispute":
        dispute = seller.key("d")
        m.open_dispute(
            conn,
            dispute_id=dispute,
            seller_id=seller.id,
            order_id=seller.key("x"),
            amount=op[1],
            deadline=deadline(),
        )
        seller.disputes.append(dispute)
    elif name == "resolve" and seller.disputes:
        m.resolve_dispute(conn, seller.disputes.pop(0), DisputeOutcome(op[1]))
    elif name == "release_reserve":
        held = [o for o in seller.orders if m.get_earning(conn, seller.id, o).reserve_amount]
        for order in held:
            earning = m.get_earning(conn, seller.id, order)
            if earning.reserve_transaction_id and earning.reserve_released_at is None:
                m.release_reserve(conn, seller.id, order)
                break
    elif name == "adjust":
        adjust(conn, PAYOUTS, seller.id, op[1] if op[2] else -op[1], seller.key("adj"))
    elif name == "pending_debit":
        account_id, currency = m.seller_account(conn, seller.id)
        platform = m.platform_ledger(conn, currency, livemode=True)
        m.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=(
                    NewEntry(account_id, Direction.DEBIT, op[1]),
                    NewEntry(platform.account(PlatformAccount.CLEARING), Direction.CREDIT, op[1]),
                ),
                status=TransactionStatus.PENDING,
                external_id=seller.key("pd"),
            ),
        )
    elif name == "payout":
        pid = seller.key("p")
        mode, percent = op[1], op[2]
        available = m.seller_balances(conn, seller.id).available
        # Instant: a share of what is left once the largest fee is paid.
        amount = max(
            (available - 400) * percent // 100 if mode == "instant" else available * percent // 100,
            1,
        )
        payout = PAYOUTS.reserve_payout(
            conn,
            payout_id=pid,
            seller_id=seller.id,
            amount=None if mode == "all" else amount,
            method="instant" if mode == "instant" else "standard",
        )
        seller.payouts.append(payout.id)
        for item in items_of(conn, PAYOUTS, payout.id).items:
            event(f"line {item.kind}")
        assert_each_entry_once(conn, PAYOUTS, seller.id)
    elif name == "legacy":
        # A payout reserved before payouts were itemized: no items, ``item_count`` NULL.
        pid = seller.key("legacy")
        PAYOUTS.reserve_payout(conn, payout_id=pid, seller_id=seller.id, amount=op[1])
        conn.execute(text("DELETE FROM payout_items WHERE payout_id = :p"), {"p": pid})
        conn.execute(text("UPDATE payouts SET item_count = NULL WHERE id = :p"), {"p": pid})
        seller.payouts.append(pid)
    elif name == "pay":
        found = seller.payout(conn, op[1], PayoutState.PENDING, PayoutState.PROCESSING)
        if found:
            PAYOUTS.begin_submission(conn, found)
            PAYOUTS.mark_submitted(conn, found, f"rail-{found}")
            PAYOUTS.mark_paid(conn, found)
    elif name == "fail":
        found = seller.payout(conn, op[1], PayoutState.PENDING, PayoutState.PROCESSING)
        if found:
            PAYOUTS.begin_submission(conn, found)
            PAYOUTS.mark_failed(conn, found, "rail_error", "failed")
    elif name == "cancel":
        found = seller.payout(conn, op[1], PayoutState.PENDING)
        if found and PAYOUTS.get_payout(conn, found).submitted_at is None:
            PAYOUTS.cancel_payout(conn, found)
    elif name == "return":
        found = seller.payout(conn, op[1], PayoutState.PAID)
        if found:
            PAYOUTS.mark_returned(conn, found, "account_closed", "returned")


@settings(
    max_examples=int(os.environ.get("ITEMS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    reserve_bp=st.sampled_from([None, 1_000]),
    legacy=st.lists(st.integers(1, 4_000), max_size=2),
    ops=st.lists(operations, min_size=12, max_size=40),
)
def test_every_entry_is_paid_out_once_and_every_payout_adds_up(
    engine: Engine, reserve_bp: int | None, legacy: list[int], ops: list[tuple[Any, ...]]
) -> None:
    """``legacy``: payouts made before itemization, first (then paid, failed, returned or left
    pending by the operations like any other)."""
    with engine.begin() as conn:
        seller = Seller(conn, reserve_bp)
    start = [("earn", 10_000, 10), ("earn", 3_000, 0), *(("legacy", n) for n in legacy)]
    for op in [*start, *ops]:
        try:
            with engine.begin() as conn:
                apply(conn, seller, op)
            event(f"ok {op[0]}")
        except LedgerError as refused:
            # Refused (nothing to pay, too much refunded, ...): nothing was written.
            event(f"refused {op[0]}: {refused.code}")
    with engine.begin() as conn:
        for pid in seller.payouts:
            if PAYOUTS.get_payout(conn, pid).item_count is not None:
                items_of(conn, PAYOUTS, pid)
        # Whatever is still payable is paid once more, and then every entry is paid out once.
        available = PAYOUTS.marketplace.seller_balances(conn, seller.id).available
        if available > 0:
            PAYOUTS.reserve_payout(conn, payout_id=seller.key("last"), seller_id=seller.id)
            assert_each_entry_once(conn, PAYOUTS, seller.id)
        live_twice = conn.execute(
            text(
                "SELECT ledger_entry_id FROM payout_items WHERE seller_id = :s "
                "AND released_at IS NULL AND ledger_entry_id IS NOT NULL "
                "GROUP BY 1 HAVING count(*) > 1"
            ),
            {"s": seller.id},
        ).all()
        assert live_twice == []
