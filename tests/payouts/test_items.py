"""Itemized payouts in the domain (``marketplace.payout_items``): a payout's lines add up to its
amount whatever happened to the seller's money, and each ledger entry is paid out once, across
paid, failed, cancelled, returned, partial, instant and scheduled payouts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from marketplace import DisputeOutcome, InstantTerms, Marketplace, Payouts, Refunds
from marketplace.payout_items import list_items
from marketplace.payout_runs import decide_payout_run, run_payout_id
from tests.payouts.items_helpers import (
    adjust,
    assert_each_entry_once,
    deadline,
    earn,
    entry_lines,
    items_of,
    lines,
    new_seller,
    paid,
)


@pytest.fixture(scope="module")
def payouts() -> Payouts:
    return Payouts(Marketplace(), InstantTerms(fee_bp=150, fee_minimum=50))


def test_a_paid_payout_lists_every_kind_of_entry(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    refunds = Refunds(payouts.marketplace)
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 10_000, 1_000)
        earn(conn, payouts, seller, f"o2-{uid}", 5_000)
        refunds.refund_earning(
            conn, refund_id=f"r-{uid}", seller_id=seller, order_id=f"o2-{uid}", amount=2_000
        )
        adjust(conn, payouts, seller, 300, f"adj-{uid}")
        # Still on hold: a pending credit is not available, and not paid out.
        payouts.marketplace.book_earning(conn, seller_id=seller, order_id=f"o3-{uid}", amount=7_000)
        payout = payouts.reserve_payout(conn, payout_id=pid, seller_id=seller)
        assert payout.amount == 9_000 + 5_000 - 2_000 + 300
        items = items_of(conn, payouts, pid)
        assert lines(items) == [
            ("earning", f"o1-{uid}", 9_000),
            ("earning", f"o2-{uid}", 5_000),
            ("refund", f"r-{uid}", -2_000),
            ("adjustment", f"adj-{uid}", 300),
        ]
        assert all(i.ledger_transaction_id for i in items.items)
        assert_each_entry_once(conn, payouts, seller)
        paid(conn, payouts, pid)
        assert payouts.get_payout(conn, pid).item_count == 4


def test_held_back_lines_and_what_the_next_payout_brings_forward(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    m = payouts.marketplace
    with engine.begin() as conn:
        new_seller(conn, payouts, seller, reserve_bp=1_000)  # 10 % reserve
        earn(conn, payouts, seller, f"o1-{uid}", 10_000)
        earn(conn, payouts, seller, f"o2-{uid}", 20_000)
        m.open_dispute(
            conn,
            dispute_id=f"d-{uid}",
            seller_id=seller,
            order_id=f"o1-{uid}",
            amount=4_000,
            deadline=deadline(),
        )
        first = payouts.reserve_payout(conn, payout_id=f"p1-{uid}", seller_id=seller)
        assert first.amount == 30_000 - 3_000 - 4_000
        assert lines(items_of(conn, payouts, first.id)) == [
            ("earning", f"o1-{uid}", 10_000),
            ("earning", f"o2-{uid}", 20_000),
            ("reserve_held", None, -3_000),
            ("dispute_open", f"d-{uid}", -4_000),
        ]
        paid(conn, payouts, first.id)

        # The dispute is lost (its debit posts), one reserve is released.
        m.resolve_dispute(conn, f"d-{uid}", DisputeOutcome.LOST)
        m.release_reserve(conn, seller, f"o1-{uid}")
        earn(conn, payouts, seller, f"o3-{uid}", 1_000)
        second = payouts.reserve_payout(conn, payout_id=f"p2-{uid}", seller_id=seller)
        # 7,000 held back before; the chargeback takes 4,000; 2,000 of reserve is still held.
        assert second.amount == 7_000 - 4_000 - 2_000 + 900
        assert lines(items_of(conn, payouts, second.id)) == [
            ("brought_forward", first.id, 7_000),
            ("chargeback", f"d-{uid}", -4_000),
            ("earning", f"o3-{uid}", 1_000),
            ("reserve_held", None, -2_000 - 100),
        ]
        assert_each_entry_once(conn, payouts, seller)


def test_a_failed_payout_gives_its_items_to_the_next(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 4_000)
        failing = payouts.reserve_payout(conn, payout_id=f"f-{uid}", seller_id=seller)
        before = items_of(conn, payouts, failing.id)
        payouts.begin_submission(conn, failing.id)
        payouts.mark_failed(conn, failing.id, "account_closed", "closed")
        # The failed payout still says what it was for; its lines no longer count.
        after = items_of(conn, payouts, failing.id)
        assert lines(after) == lines(before) == [("earning", f"o1-{uid}", 4_000)]
        assert all(i.released_at is not None for i in after.items)

        earn(conn, payouts, seller, f"o2-{uid}", 1_000)
        payouts.set_payout_account(conn, seller, "000999999999", "110000000", "Jane Doe")
        retry = payouts.reserve_payout(conn, payout_id=f"p-{uid}", seller_id=seller)
        assert retry.amount == 5_000
        items = items_of(conn, payouts, retry.id)
        assert lines(items) == [("earning", f"o1-{uid}", 4_000), ("earning", f"o2-{uid}", 1_000)]
        assert entry_lines(items)[0].ledger_entry_id == entry_lines(after)[0].ledger_entry_id
        assert_each_entry_once(conn, payouts, seller)


def test_a_cancelled_payout_gives_back_its_items_and_what_it_brought_forward(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 10_000)
        partial = payouts.reserve_payout(conn, payout_id=f"a-{uid}", seller_id=seller, amount=6_000)
        paid(conn, payouts, partial.id)
        earn(conn, payouts, seller, f"o2-{uid}", 500)
        cancelled = payouts.reserve_payout(conn, payout_id=f"c-{uid}", seller_id=seller)
        assert lines(items_of(conn, payouts, cancelled.id)) == [
            ("brought_forward", partial.id, 4_000),
            ("earning", f"o2-{uid}", 500),
        ]
        payouts.cancel_payout(conn, cancelled.id)
        again = payouts.reserve_payout(conn, payout_id=f"b-{uid}", seller_id=seller)
        assert again.amount == 4_500
        assert lines(items_of(conn, payouts, again.id)) == [
            ("brought_forward", partial.id, 4_000),
            ("earning", f"o2-{uid}", 500),
        ]
        assert_each_entry_once(conn, payouts, seller)


def test_a_returned_payout_keeps_its_items_and_the_return_is_paid_next(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 8_000)
        first = payouts.reserve_payout(conn, payout_id=f"p1-{uid}", seller_id=seller)
        paid(conn, payouts, first.id)
        payouts.mark_returned(conn, first.id, "account_closed", "returned by the bank")
        # What it paid for stays its own: the order is not paid again ...
        assert lines(items_of(conn, payouts, first.id)) == [("earning", f"o1-{uid}", 8_000)]
        earn(conn, payouts, seller, f"o2-{uid}", 100)
        second = payouts.reserve_payout(conn, payout_id=f"p2-{uid}", seller_id=seller)
        # ... the money that came back is.
        assert second.amount == 8_100
        assert lines(items_of(conn, payouts, second.id)) == [
            ("payout_returned", first.id, 8_000),
            ("earning", f"o2-{uid}", 100),
        ]
        assert_each_entry_once(conn, payouts, seller)


def test_a_partial_payout_carries_forward_and_the_next_brings_it(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 10_000)
        earn(conn, payouts, seller, f"o2-{uid}", 2_000)
        first = payouts.reserve_payout(conn, payout_id=f"p1-{uid}", seller_id=seller, amount=7_500)
        assert lines(items_of(conn, payouts, first.id)) == [
            ("earning", f"o1-{uid}", 10_000),
            ("earning", f"o2-{uid}", 2_000),
            ("carried_forward", None, -4_500),
        ]
        second = payouts.reserve_payout(conn, payout_id=f"p2-{uid}", seller_id=seller, amount=4_000)
        assert lines(items_of(conn, payouts, second.id)) == [
            ("brought_forward", first.id, 4_500),
            ("carried_forward", None, -500),
        ]
        paid(conn, payouts, first.id)
        earn(conn, payouts, seller, f"o3-{uid}", 50)
        third = payouts.reserve_payout(conn, payout_id=f"p3-{uid}", seller_id=seller)
        assert lines(items_of(conn, payouts, third.id)) == [
            ("brought_forward", second.id, 500),
            ("earning", f"o3-{uid}", 50),
        ]
        assert third.amount == 550
        assert_each_entry_once(conn, payouts, seller)


def test_an_instant_payout_shows_its_fee(engine: Engine, payouts: Payouts, uid: str) -> None:
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 10_000)
        # The largest instant payout: 9,852 + its fee of 148 (1.5 %, rounded up) = 10,000.
        largest = payouts.reserve_payout(
            conn, payout_id=f"i1-{uid}", seller_id=seller, method="instant"
        )
        assert (largest.amount, largest.fee) == (9_852, 148)
        assert lines(items_of(conn, payouts, largest.id)) == [
            ("earning", f"o1-{uid}", 10_000),
            ("instant_fee", None, -148),
        ]
        paid(conn, payouts, largest.id)
        # A return keeps the fee: only the amount comes back, and the next payout pays it.
        payouts.mark_returned(conn, largest.id, "account_closed", "returned")
        earn(conn, payouts, seller, f"o2-{uid}", 5_000)
        some = payouts.reserve_payout(
            conn, payout_id=f"i2-{uid}", seller_id=seller, amount=1_000, method="instant"
        )
        assert some.fee == 50
        assert lines(items_of(conn, payouts, some.id)) == [
            ("payout_returned", largest.id, 9_852),
            ("earning", f"o2-{uid}", 5_000),
            ("instant_fee", None, -50),
            ("carried_forward", None, -(14_852 - 1_050)),
        ]
        assert_each_entry_once(conn, payouts, seller)


def test_a_scheduled_run_payout_is_itemized(engine: Engine, payouts: Payouts, uid: str) -> None:
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 3_000)
        run, _ = decide_payout_run(
            conn,
            payouts.marketplace,
            run_id=f"{seller}:2027-01-01T00:00:00Z",
            seller_id=seller,
            scheduled_at=datetime(2027, 1, 1, tzinfo=UTC),
            minimum_amount=0,
        )
        pid = run_payout_id(run.id)
        assert payouts.get_payout(conn, pid).origin == "scheduled"
        assert lines(items_of(conn, payouts, pid)) == [("earning", f"o1-{uid}", 3_000)]


def test_postgresql_refuses_one_entry_in_two_live_payouts(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 1_000)
        payouts.reserve_payout(conn, payout_id=f"p1-{uid}", seller_id=seller, amount=100)
        earn(conn, payouts, seller, f"o2-{uid}", 1_000)
        payouts.reserve_payout(conn, payout_id=f"p2-{uid}", seller_id=seller, amount=100)
    steal = text(
        """
INSERT INTO payout_items (payout_id, line, seller_id, kind, reference, ledger_entry_id,
                          amount, effective_at, created_at)
SELECT :thief, 99, seller_id, kind, reference, ledger_entry_id, amount, effective_at, now()
  FROM payout_items WHERE payout_id = :owner AND ledger_entry_id IS NOT NULL
"""
    )
    with pytest.raises(IntegrityError, match="uq_payout_items_live_entry"), engine.begin() as conn:
        conn.execute(steal, {"thief": f"p2-{uid}", "owner": f"p1-{uid}"})
    with engine.begin() as conn:
        payouts.cancel_payout(conn, f"p1-{uid}")
    # Released (the first payout was cancelled), the entry may be paid again, but a line added
    # to a payout must still add up to its amount, and a line never changes but for its release.
    with (
        pytest.raises(IntegrityError, match="add up to 1100, not to its amount 100"),
        engine.begin() as conn,
    ):
        conn.execute(steal, {"thief": f"p2-{uid}", "owner": f"p1-{uid}"})
    with pytest.raises(DBAPIError, match="is fixed"), engine.begin() as conn:
        conn.execute(
            text("UPDATE payout_items SET amount = amount + 1 WHERE payout_id = :p"),
            {"p": f"p2-{uid}"},
        )
    with pytest.raises(DBAPIError, match="is fixed"), engine.begin() as conn:
        conn.execute(
            text("UPDATE payout_items SET released_at = NULL WHERE payout_id = :p"),
            {"p": f"p1-{uid}"},
        )


def test_a_payout_reserved_before_itemization(engine: Engine, payouts: Payouts, uid: str) -> None:
    """Payouts reserved before the migration have no items (``item_count`` NULL): their
    endpoint says so, and the next itemized payouts count them once, in transit then paid."""
    seller = f"s-{uid}"
    forget = [
        text("DELETE FROM payout_items WHERE payout_id = :p"),
        text("UPDATE payouts SET item_count = NULL WHERE id = :p"),
    ]
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 10_000)
        old = payouts.reserve_payout(conn, payout_id=f"old-{uid}", seller_id=seller, amount=6_000)
        for statement in forget:
            conn.execute(statement, {"p": old.id})
        legacy = payouts.get_payout(conn, old.id)
        assert legacy.item_count is None
        shown = list_items(conn, legacy)
        assert (shown.itemized, shown.items, shown.total, shown.count) == (False, [], 0, 0)

        first = payouts.reserve_payout(conn, payout_id=f"p1-{uid}", seller_id=seller)
        assert lines(items_of(conn, payouts, first.id)) == [
            ("earning", f"o1-{uid}", 10_000),
            ("payout_in_transit", old.id, -6_000),
        ]
        paid(conn, payouts, old.id)
        earn(conn, payouts, seller, f"o2-{uid}", 700)
        second = payouts.reserve_payout(conn, payout_id=f"p2-{uid}", seller_id=seller)
        assert lines(items_of(conn, payouts, second.id)) == [
            ("brought_forward", first.id, 6_000),
            ("earning", f"o2-{uid}", 700),
            ("payout_before_itemization", old.id, -6_000),
        ]
        earn(conn, payouts, seller, f"o3-{uid}", 10)
        third = payouts.reserve_payout(conn, payout_id=f"p3-{uid}", seller_id=seller)
        # Counted once: the third payout does not see the old payout again.
        assert lines(items_of(conn, payouts, third.id)) == [("earning", f"o3-{uid}", 10)]


def test_two_payouts_reserved_at_once_itemize_each_entry_once(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    """The seller's payout lock serialises reservations: the second sees the first's items
    (committed) and brings forward what the first carried, whichever comes first."""
    seller = f"s-{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        for n in range(5):
            earn(conn, payouts, seller, f"o{n}-{uid}", 2_000)
    start = threading.Barrier(2)

    def reserve(pid: str) -> None:
        start.wait()
        with engine.begin() as conn:
            payouts.reserve_payout(conn, payout_id=pid, seller_id=seller, amount=3_000)

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(reserve, f"p{n}-{uid}") for n in range(2)]:
            done.result()
    with engine.begin() as conn:
        both = [items_of(conn, payouts, f"p{n}-{uid}") for n in range(2)]
        first, second = sorted(both, key=lambda i: len(entry_lines(i)), reverse=True)
        assert len(entry_lines(first)) == 5 and entry_lines(second) == []
        assert lines(second) == [
            ("brought_forward", first.payout_id, 7_000),
            ("carried_forward", None, -4_000),
        ]
        assert_each_entry_once(conn, payouts, seller)


def test_a_failed_payout_whose_hold_was_brought_forward_already(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    """The first payout holds back a dispute; the dispute is won and the second payout brings
    the 100 forward; then the first fails. Its earning is payable again, but the seller already
    had the 100 through the second payout: the third brings forward -100."""
    seller = f"s-{uid}"
    m = payouts.marketplace
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 1_000)
        m.open_dispute(
            conn,
            dispute_id=f"d-{uid}",
            seller_id=seller,
            order_id=f"o1-{uid}",
            amount=100,
            deadline=deadline(),
        )
        first = payouts.reserve_payout(conn, payout_id=f"p1-{uid}", seller_id=seller)
        assert first.amount == 900
        m.resolve_dispute(conn, f"d-{uid}", DisputeOutcome.WON)
        second = payouts.reserve_payout(conn, payout_id=f"p2-{uid}", seller_id=seller)
        assert lines(items_of(conn, payouts, second.id)) == [("brought_forward", first.id, 100)]
        payouts.begin_submission(conn, first.id)
        payouts.mark_failed(conn, first.id, "could_not_process", "try again")
        third = payouts.reserve_payout(conn, payout_id=f"p3-{uid}", seller_id=seller)
        assert lines(items_of(conn, payouts, third.id)) == [
            ("brought_forward", second.id, -100),
            ("earning", f"o1-{uid}", 1_000),
        ]
        assert third.amount == 900
        assert_each_entry_once(conn, payouts, seller)
