"""DESIGN.md's "The seller's money", 4 and 5, in the domain (``marketplace.payouts``): the three
balance views after every step of a payout and of a refund, idempotency, and the errors."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from ledger_core import BalanceConditionFailed
from marketplace import (
    InvalidPayoutState,
    Marketplace,
    NothingToPay,
    PayoutAccountMissing,
    PayoutConflict,
    Payouts,
    PayoutState,
    RefundConflict,
    RefundExceedsEarning,
    Refunds,
    SellerBalances,
)
from tests.helpers import ledger_transaction_count

ACCOUNT = "000123456789"
ROUTING = "110000000"


@pytest.fixture(scope="module")
def payouts() -> Payouts:
    return Payouts(Marketplace())


@pytest.fixture(scope="module")
def refunds(payouts: Payouts) -> Refunds:
    return Refunds(payouts.marketplace)


def views(engine: Engine, payouts: Payouts, seller_id: str) -> tuple[int, int, int]:
    """(pending, posted, available)"""
    with engine.begin() as conn:
        b: SellerBalances = payouts.marketplace.seller_balances(conn, seller_id)
    return (b.pending, b.posted, b.available)


def seller_with_money(
    engine: Engine, payouts: Payouts, seller_id: str, *earnings: tuple[str, int, int]
) -> None:
    """A seller with a payout account and each (order, amount, fee) booked and posted."""
    m = payouts.marketplace
    with engine.begin() as conn:
        m.create_seller(conn, seller_id=seller_id, name="Shop", currency="USD")
        payouts.set_payout_account(conn, seller_id, ACCOUNT, ROUTING, "Jane Doe")
        for order, amount, fee in earnings:
            m.book_earning(conn, seller_id=seller_id, order_id=order, amount=amount, fee=fee)
            m.post_earning(conn, seller_id, order)


def test_payout_account_is_masked_and_replaced(engine: Engine, payouts: Payouts, uid: str) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller)
    with engine.begin() as conn:
        account = payouts.get_payout_account(conn, seller)
        assert account.masked_account_number.endswith("6789")
        assert ACCOUNT not in account.masked_account_number and ACCOUNT not in repr(account)
        changed = payouts.set_payout_account(conn, seller, "000111111113", ROUTING, "J. Doe")
        assert (changed.last4, changed.holder_name) == ("1113", "J. Doe")


def test_paid_payout_balances_at_each_step(engine: Engine, payouts: Payouts, uid: str) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 10_000, 1_000))
    assert views(engine, payouts, seller) == (9_000, 9_000, 9_000)

    with engine.begin() as conn:
        payout = payouts.reserve_payout(conn, payout_id=pid, seller_id=seller)
    assert (payout.status, payout.amount) == (PayoutState.PENDING, 9_000)
    assert payout.masked_account_number.endswith("6789")
    # Reserved: available drops, posted does not.
    assert views(engine, payouts, seller) == (0, 9_000, 0)

    with engine.begin() as conn:
        again = payouts.reserve_payout(conn, payout_id=pid, seller_id=seller)
        assert again.ledger_transaction_id == payout.ledger_transaction_id
        with pytest.raises(PayoutConflict):
            payouts.reserve_payout(conn, payout_id=pid, seller_id=seller, amount=5)
        payouts.begin_submission(conn, pid)
        assert payouts.mark_submitted(conn, pid, "rail-1").status is PayoutState.PROCESSING
        with pytest.raises(InvalidPayoutState):
            payouts.cancel_payout(conn, pid)
    assert views(engine, payouts, seller) == (0, 9_000, 0)

    with engine.begin() as conn:
        paid = payouts.mark_paid(conn, pid)
        assert payouts.mark_paid(conn, pid).paid_at == paid.paid_at  # no-op
    assert paid.status is PayoutState.PAID
    # Paid: posted drops too.
    assert views(engine, payouts, seller) == (0, 0, 0)

    with engine.begin() as conn:
        returned = payouts.mark_returned(conn, pid, "no_account", "returned")
        payouts.mark_returned(conn, pid, "no_account", "returned")
        with pytest.raises(InvalidPayoutState):
            payouts.mark_failed(conn, pid, "x", "y")
    assert returned.status is PayoutState.RETURNED and returned.return_transaction_id
    # Returned: the reversal credits the seller back.
    assert views(engine, payouts, seller) == (9_000, 9_000, 9_000)
    assert ledger_transaction_count(engine, f"payout:{pid}") == 1
    assert ledger_transaction_count(engine, f"payout:{pid}:return") == 1


def test_failed_and_cancelled_payouts_give_the_money_back(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 5_000, 0))
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=f"f-{uid}", seller_id=seller, amount=2_000)
    assert views(engine, payouts, seller) == (3_000, 5_000, 3_000)
    with engine.begin() as conn:
        payouts.begin_submission(conn, f"f-{uid}")
        payouts.mark_submitted(conn, f"f-{uid}", "r")
        failed = payouts.mark_failed(conn, f"f-{uid}", "account_closed", "closed")
        with pytest.raises(InvalidPayoutState):
            payouts.mark_paid(conn, f"f-{uid}")
    assert (failed.status, failed.failure_code) == (PayoutState.FAILED, "account_closed")
    assert views(engine, payouts, seller) == (5_000, 5_000, 5_000)

    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=f"c-{uid}", seller_id=seller)
    assert views(engine, payouts, seller) == (0, 5_000, 0)
    with engine.begin() as conn:
        cancelled = payouts.cancel_payout(conn, f"c-{uid}")
        assert payouts.cancel_payout(conn, f"c-{uid}").status is PayoutState.CANCELLED
        with pytest.raises(InvalidPayoutState):
            payouts.mark_submitted(conn, f"c-{uid}", "r")
        # A cancelled payout is never submitted.
        assert payouts.begin_submission(conn, f"c-{uid}").status is PayoutState.CANCELLED
    assert cancelled.status is PayoutState.CANCELLED
    assert views(engine, payouts, seller) == (5_000, 5_000, 5_000)

    with engine.begin() as conn:
        page = payouts.list_payouts(conn, seller_id=seller)
        assert [p.id for p in page.items] == [f"c-{uid}", f"f-{uid}"]
        failed_only = payouts.list_payouts(conn, seller_id=seller, status="failed", limit=1)
        assert [p.id for p in failed_only.items] == [f"f-{uid}"]


def test_reserve_errors(engine: Engine, payouts: Payouts, uid: str) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 1_000, 0))
    with engine.begin() as conn:
        with pytest.raises(BalanceConditionFailed) as too_much:
            payouts.reserve_payout(conn, payout_id=f"a-{uid}", seller_id=seller, amount=1_001)
        assert too_much.value.code == "insufficient_balance"
        payouts.reserve_payout(conn, payout_id=f"b-{uid}", seller_id=seller)
        with pytest.raises(NothingToPay) as nothing:
            payouts.reserve_payout(conn, payout_id=f"c-{uid}", seller_id=seller)
        assert nothing.value.code == "nothing_to_pay"
    other = f"t-{uid}"
    with engine.begin() as conn:
        payouts.marketplace.create_seller(conn, seller_id=other, name="No bank", currency="USD")
        with pytest.raises(PayoutAccountMissing) as missing:
            payouts.reserve_payout(conn, payout_id=f"d-{uid}", seller_id=other)
        assert missing.value.code == "payout_account_missing"


def test_refunds_during_hold_full_and_partial(
    engine: Engine, payouts: Payouts, refunds: Refunds, uid: str
) -> None:
    seller, o1, o2 = f"s-{uid}", f"o1-{uid}", f"o2-{uid}"
    m = payouts.marketplace
    with engine.begin() as conn:
        m.create_seller(conn, seller_id=seller, name="Shop", currency="USD")
        m.book_earning(conn, seller_id=seller, order_id=o1, amount=10_000, fee=1_000)
        m.book_earning(conn, seller_id=seller, order_id=o2, amount=3_000, fee=300)
    assert views(engine, payouts, seller) == (11_700, 0, 0)

    # Full refund on hold: the pending earning is archived.
    with engine.begin() as conn:
        full = refunds.refund_earning(conn, refund_id=f"r0-{uid}", seller_id=seller, order_id=o2)
    assert (full.kind, full.amount, full.fee_amount, full.seller_amount) == (
        "during_hold",
        3_000,
        300,
        2_700,
    )
    assert full.earning_status == "cancelled"
    assert views(engine, payouts, seller) == (9_000, 0, 0)

    # Partial: 2,500 of 10,000 -> fee share ceil(1000*2500/10000) = 250; seller 2,250.
    with engine.begin() as conn:
        part = refunds.refund_earning(
            conn, refund_id=f"r1-{uid}", seller_id=seller, order_id=o1, amount=2_500
        )
        same = refunds.refund_earning(
            conn, refund_id=f"r1-{uid}", seller_id=seller, order_id=o1, amount=2_500
        )
        assert same.id == part.id and same.ledger_transaction_id == part.ledger_transaction_id
        with pytest.raises(RefundConflict):
            refunds.refund_earning(
                conn, refund_id=f"r1-{uid}", seller_id=seller, order_id=o1, amount=1
            )
        earning = m.get_earning(conn, seller, o1)
        balances = m.seller_balances(conn, seller)
    assert (part.fee_amount, part.seller_amount, part.earning_status) == (250, 2_250, "on_hold")
    assert earning.ledger_transaction_id == part.ledger_transaction_id
    assert ledger_transaction_count(engine, f"rebook:1:{seller}/{o1}") == 1
    assert views(engine, payouts, seller) == (6_750, 0, 0)
    assert balances.on_hold == 6_750

    # Never more than what is left.
    with engine.begin() as conn, pytest.raises(RefundExceedsEarning):
        refunds.refund_earning(
            conn, refund_id=f"r2-{uid}", seller_id=seller, order_id=o1, amount=7_501
        )
    # The hold ends: the remainder posts.
    with engine.begin() as conn:
        m.post_earning(conn, seller, o1)
    assert views(engine, payouts, seller) == (6_750, 6_750, 6_750)


def test_refund_after_posting_takes_the_seller_negative_and_blocks_payouts(
    engine: Engine, payouts: Payouts, refunds: Refunds, uid: str
) -> None:
    seller, o1, o2, o3 = f"s-{uid}", f"o1-{uid}", f"o2-{uid}", f"o3-{uid}"
    seller_with_money(engine, payouts, seller, (o1, 10_000, 1_000), (o2, 1_000, 100))
    assert views(engine, payouts, seller) == (9_900, 9_900, 9_900)
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=f"p-{uid}", seller_id=seller)
        payouts.begin_submission(conn, f"p-{uid}")
        payouts.mark_paid(conn, f"p-{uid}")
    assert views(engine, payouts, seller) == (0, 0, 0)

    # Refund of posted order 1 in two parts: 3,333 then the rest; the seller goes negative.
    with engine.begin() as conn:
        r1 = refunds.refund_earning(
            conn, refund_id=f"r1-{uid}", seller_id=seller, order_id=o1, amount=3_333
        )
    assert (r1.kind, r1.fee_amount, r1.seller_amount) == ("after_posting", 334, 2_999)
    assert views(engine, payouts, seller) == (-2_999, -2_999, -2_999)
    with engine.begin() as conn:
        r2 = refunds.refund_earning(conn, refund_id=f"r2-{uid}", seller_id=seller, order_id=o1)
        assert payouts.marketplace.get_earning(conn, seller, o1).status == "refunded"
    # In total exactly the fee and the net.
    assert (r1.fee_amount + r2.fee_amount, r1.seller_amount + r2.seller_amount) == (1_000, 9_000)
    assert views(engine, payouts, seller) == (-9_000, -9_000, -9_000)
    with engine.begin() as conn:
        with pytest.raises(RefundExceedsEarning):
            refunds.refund_earning(
                conn, refund_id=f"r3-{uid}", seller_id=seller, order_id=o1, amount=1
            )
        # Negative: nothing is paid.
        with pytest.raises(NothingToPay):
            payouts.reserve_payout(conn, payout_id=f"q-{uid}", seller_id=seller)
    assert ledger_transaction_count(engine, f"refund:r1-{uid}") == 1

    # Future earnings recover it first: 10,000 more -> 1,000 available, paid out.
    with engine.begin() as conn:
        payouts.marketplace.book_earning(conn, seller_id=seller, order_id=o3, amount=10_000, fee=0)
        payouts.marketplace.post_earning(conn, seller, o3)
        payout = payouts.reserve_payout(conn, payout_id=f"q-{uid}", seller_id=seller)
    assert payout.amount == 1_000
    assert views(engine, payouts, seller) == (0, 1_000, 0)


def test_refund_rounding_never_costs_the_seller_more_than_its_share(
    engine: Engine, payouts: Payouts, refunds: Refunds, uid: str
) -> None:
    seller, order = f"s-{uid}", f"o-{uid}"
    seller_with_money(engine, payouts, seller, (order, 7, 3))  # net 4
    shares = []
    with engine.begin() as conn:
        for i in range(7):
            r = refunds.refund_earning(
                conn, refund_id=f"r{i}-{uid}", seller_id=seller, order_id=order, amount=1
            )
            shares.append(r.seller_amount)
            # Cumulative seller share <= floor(net * refunded / amount).
            assert sum(shares) <= 4 * (i + 1) // 7
    assert sum(shares) == 4
    assert views(engine, payouts, seller) == (0, 0, 0)
