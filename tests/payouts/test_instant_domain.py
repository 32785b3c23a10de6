"""Instant payouts in the domain (``marketplace.payouts``, ``marketplace.instant``): the fee (its
formula and rounding, booked to the platform's fees revenue in the reserving transaction), what a
failure and a return do with it, the rail's refusal before anything is written, the daily limit
(also with requests racing past it), and what is instantly available."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine

from ledger_core import BalanceConditionFailed, Direction, TransactionStatus, ValidationFailed
from marketplace import (
    InstantAvailability,
    InstantLimitExceeded,
    InstantNotSupported,
    InstantTerms,
    Marketplace,
    NothingToPay,
    PayoutAccount,
    PayoutConflict,
    Payouts,
    PayoutState,
    PlatformAccount,
)
from marketplace.instant import count_instant, instant_used, uncount_instant, utc_day
from marketplace.tables import payouts as payouts_table
from tests.helpers import ledger_transaction_count, run_in_threads
from tests.payouts.test_domain import seller_with_money, views

TERMS = InstantTerms(fee_bp=150, fee_minimum=50, daily_limit=10_000)


@pytest.fixture(scope="module")
def payouts() -> Payouts:
    return Payouts(Marketplace(), TERMS)


def in_transit(engine: Engine, payouts: Payouts, seller: str) -> int:
    with engine.begin() as conn:
        return payouts.marketplace.seller_balances(conn, seller).in_transit


def instant_now(conn: Connection, payouts: Payouts, seller: str) -> InstantAvailability:
    return payouts.instant_availability(payouts.marketplace.seller_balances(conn, seller))


def fees_revenue(engine: Engine, payouts: Payouts) -> tuple[int, int]:
    """(pending, posted) of the platform's USD fees revenue account."""
    with engine.begin() as conn:
        platform = payouts.marketplace.platform_ledger(conn, "USD", livemode=True)
        account = payouts.ledger.get_account(conn, platform.account(PlatformAccount.FEES_REVENUE))
    return account.balances.pending.amount, account.balances.posted.amount


def test_the_fee_formula_rounds_up_and_has_a_minimum() -> None:
    terms = InstantTerms(fee_bp=150, fee_minimum=50)
    assert terms.fee(10_000) == 150  # 1.5 %
    assert terms.fee(10_001) == 151  # 150.015 rounded up: the platform's favour
    assert terms.fee(100) == 50  # 1.5 is below the minimum
    assert InstantTerms(fee_bp=0, fee_minimum=0).fee(999) == 0
    # The largest payout whose amount and fee fit: nothing is left over that could pay more.
    for funds in (0, 50, 51, 100, 3_383, 10_000, 10_150, 987_654):
        amount = terms.largest_amount(funds)
        assert amount == 0 or amount + terms.fee(amount) <= funds
        assert (amount + 1) + terms.fee(amount + 1) > funds
    assert terms.largest_amount(10_150) == 10_000


def test_an_instant_payout_books_its_fee_in_the_reserving_transaction(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"i-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 20_000, 0))
    fees_before = fees_revenue(engine, payouts)
    with engine.begin() as conn:
        payout = payouts.reserve_payout(
            conn, payout_id=pid, seller_id=seller, amount=4_000, method="instant"
        )
        again = payouts.reserve_payout(
            conn, payout_id=pid, seller_id=seller, amount=4_000, method="instant"
        )
        txn = payouts.ledger.get_transaction(conn, payout.ledger_transaction_id)
        platform = payouts.marketplace.platform_ledger(conn, "USD", livemode=True)
        seller_account = payouts.marketplace.get_seller(conn, seller).ledger_account_id
    assert (payout.method, payout.fee, payout.amount, payout.status) == (
        "instant",
        60,
        4_000,
        PayoutState.PENDING,
    )
    assert again == payout
    # One pending transaction: seller debited amount + fee; in transit gets the amount, the
    # platform's fees revenue the fee.
    assert txn.status is TransactionStatus.PENDING
    assert sorted((e.account_id, e.direction, e.amount) for e in txn.entries) == sorted(
        [
            (seller_account, Direction.DEBIT, 4_060),
            (platform.account(PlatformAccount.PAYOUTS_IN_TRANSIT), Direction.CREDIT, 4_000),
            (platform.account(PlatformAccount.FEES_REVENUE), Direction.CREDIT, 60),
        ]
    )
    assert views(engine, payouts, seller) == (15_940, 20_000, 15_940)
    assert in_transit(engine, payouts, seller) == 4_060
    assert fees_revenue(engine, payouts) == (fees_before[0] + 60, fees_before[1])
    # The same id as a standard payout is another payout: a conflict.
    with engine.begin() as conn, pytest.raises(PayoutConflict):
        payouts.reserve_payout(conn, payout_id=pid, seller_id=seller, amount=4_000)

    with engine.begin() as conn:
        payouts.begin_submission(conn, pid)
        payouts.mark_submitted(conn, pid, "rtp-1")
        payouts.mark_paid(conn, pid)
    assert views(engine, payouts, seller) == (15_940, 15_940, 15_940)
    assert in_transit(engine, payouts, seller) == 0
    assert fees_revenue(engine, payouts) == (fees_before[0] + 60, fees_before[1] + 60)

    # Returned: the amount comes back, the fee is kept.
    with engine.begin() as conn:
        returned = payouts.mark_returned(conn, pid, "no_account", "returned")
        again_returned = payouts.mark_returned(conn, pid, "no_account", "returned")
        back = payouts.ledger.get_transaction(conn, returned.return_transaction_id)  # type: ignore[arg-type]
    assert (returned.status, again_returned.return_transaction_id) == (
        PayoutState.RETURNED,
        returned.return_transaction_id,
    )
    assert sorted((e.account_id, e.direction, e.amount) for e in back.entries) == sorted(
        [
            (platform.account(PlatformAccount.PAYOUTS_IN_TRANSIT), Direction.DEBIT, 4_000),
            (seller_account, Direction.CREDIT, 4_000),
        ]
    )
    assert views(engine, payouts, seller) == (19_940, 19_940, 19_940)
    assert fees_revenue(engine, payouts)[1] == fees_before[1] + 60
    assert ledger_transaction_count(engine, f"payout:{pid}:return") == 1


def test_a_failed_instant_payout_gives_the_amount_and_the_fee_back(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"i-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 5_000, 0))
    fees_before = fees_revenue(engine, payouts)
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=pid, seller_id=seller, method="instant")
        payouts.begin_submission(conn, pid)
        payouts.mark_submitted(conn, pid, "rtp-2")
    assert views(engine, payouts, seller) == (0, 5_000, 0)
    with engine.begin() as conn:
        failed = payouts.mark_failed(conn, pid, "instant_declined", "declined")
    assert failed.status is PayoutState.FAILED
    assert views(engine, payouts, seller) == (5_000, 5_000, 5_000)
    assert in_transit(engine, payouts, seller) == 0
    assert fees_revenue(engine, payouts) == fees_before
    # A failed payout does not count towards the day's limit.
    with engine.begin() as conn:
        now = instant_now(conn, payouts, seller)
    assert (now.used_today, now.remaining_today) == (0, 10_000)


def test_everything_available_instantly_leaves_room_for_the_fee(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 5_075, 0))
    with engine.begin() as conn:
        assert instant_now(conn, payouts, seller).available == 5_000
        payout = payouts.reserve_payout(
            conn, payout_id=f"i-{uid}", seller_id=seller, method="instant"
        )
    assert (payout.amount, payout.fee) == (5_000, 75)
    assert views(engine, payouts, seller)[2] == 0
    with engine.begin() as conn, pytest.raises(NothingToPay):
        payouts.reserve_payout(conn, payout_id=f"j-{uid}", seller_id=seller, method="instant")
    # An amount whose fee does not fit is refused, nothing written.
    seller2 = f"t-{uid}"
    seller_with_money(engine, payouts, seller2, (f"o2-{uid}", 1_000, 0))
    with engine.begin() as conn, pytest.raises(BalanceConditionFailed) as short:
        payouts.reserve_payout(
            conn, payout_id=f"k-{uid}", seller_id=seller2, amount=1_000, method="instant"
        )
    assert short.value.code == "insufficient_balance"
    assert views(engine, payouts, seller2) == (1_000, 1_000, 1_000)


def test_a_destination_without_instant_payments_reserves_nothing(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"i-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 5_000, 0))
    asked: list[PayoutAccount] = []

    def no(account: PayoutAccount) -> bool:
        asked.append(account)
        return False

    with engine.begin() as conn, pytest.raises(InstantNotSupported) as refused:
        payouts.reserve_payout(
            conn, payout_id=pid, seller_id=seller, method="instant", instant_supported=no
        )
    assert refused.value.code == "instant_not_supported"
    assert [a.seller_id for a in asked] == [seller]
    assert views(engine, payouts, seller) == (5_000, 5_000, 5_000)
    assert ledger_transaction_count(engine, f"payout:{pid}") == 0
    with engine.connect() as conn:
        assert conn.execute(payouts_table.select().where(payouts_table.c.id == pid)).first() is None


def test_the_daily_limit(engine: Engine, payouts: Payouts, uid: str) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 50_000, 0))
    with engine.begin() as conn:
        payouts.reserve_payout(
            conn, payout_id=f"a-{uid}", seller_id=seller, amount=7_000, method="instant"
        )
        # Standard payouts do not count.
        payouts.reserve_payout(conn, payout_id=f"b-{uid}", seller_id=seller, amount=9_000)
        now = instant_now(conn, payouts, seller)
    assert (now.available, now.used_today, now.remaining_today) == (3_000, 7_000, 3_000)
    with engine.begin() as conn, pytest.raises(InstantLimitExceeded) as over:
        payouts.reserve_payout(
            conn, payout_id=f"c-{uid}", seller_id=seller, amount=3_001, method="instant"
        )
    assert over.value.code == "instant_limit_exceeded"
    assert "3000 remains today" in over.value.message
    assert over.value.details["remaining"] == 3_000
    with engine.begin() as conn:
        rest = payouts.reserve_payout(
            conn, payout_id=f"d-{uid}", seller_id=seller, method="instant"
        )
    assert rest.amount == 3_000  # everything available, capped by the limit
    with engine.begin() as conn, pytest.raises(InstantLimitExceeded):
        payouts.reserve_payout(conn, payout_id=f"e-{uid}", seller_id=seller, method="instant")


def test_concurrent_instant_payouts_cannot_pass_the_limit_together(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 100_000, 0))
    barrier = threading.Barrier(8)

    def pay(n: int) -> None:
        barrier.wait()
        with engine.begin() as conn:
            payouts.reserve_payout(
                conn, payout_id=f"r{n}-{uid}", seller_id=seller, amount=3_000, method="instant"
            )

    errors = run_in_threads(pay, 8)
    # 10,000 a day: three of 3,000 fit, the other five are refused.
    assert len(errors) == 5 and all(isinstance(e, InstantLimitExceeded) for e in errors)
    with engine.begin() as conn:
        now = instant_now(conn, payouts, seller)
    assert now.used_today == 9_000
    assert views(engine, payouts, seller)[2] == 100_000 - 3 * (3_000 + 50)


def test_a_sellers_own_daily_limit(engine: Engine, payouts: Payouts, uid: str) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 50_000, 0))
    m = payouts.marketplace
    with engine.begin() as conn:
        assert m.update_seller(conn, seller, instant_daily_limit=25_000).instant_daily_limit == (
            25_000
        )
        assert instant_now(conn, payouts, seller).remaining_today == 25_000
        payouts.reserve_payout(
            conn, payout_id=f"a-{uid}", seller_id=seller, amount=20_000, method="instant"
        )
    with engine.begin() as conn, pytest.raises(InstantLimitExceeded):
        payouts.reserve_payout(
            conn, payout_id=f"b-{uid}", seller_id=seller, amount=5_001, method="instant"
        )
    with engine.begin() as conn:
        # Back to the platform's (10,000 here): already used up today.
        assert m.update_seller(conn, seller, instant_daily_limit=None).instant_daily_limit is None
        assert instant_now(conn, payouts, seller).remaining_today == 0
    with engine.begin() as conn, pytest.raises(ValidationFailed):
        m.update_seller(conn, seller, instant_daily_limit=-1)


def test_the_count_is_one_conditional_upsert_and_a_cancel_takes_it_off(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 30_000, 0))
    day = utc_day(datetime.now(UTC))
    with engine.begin() as conn:
        assert count_instant(conn, seller, day, 6_000, 10_000)
        assert not count_instant(conn, seller, day, 4_001, 10_000)  # refused, nothing counted
        assert count_instant(conn, seller, day, 4_000, 10_000)
        assert instant_used(conn, seller, day) == 10_000
        uncount_instant(conn, seller, day, 10_000)
    with engine.begin() as conn:
        payout = payouts.reserve_payout(
            conn, payout_id=f"c-{uid}", seller_id=seller, amount=8_000, method="instant"
        )
        assert instant_now(conn, payouts, seller).used_today == 8_000
        payouts.cancel_payout(conn, payout.id)
        payouts.cancel_payout(conn, payout.id)  # asked again: taken off once
        assert instant_now(conn, payouts, seller).used_today == 0
    assert views(engine, payouts, seller) == (30_000, 30_000, 30_000)  # the fee came back too
