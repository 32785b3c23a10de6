"""The marketplace functions against the real database: DESIGN.md's steps 1-3 (earning pending,
posted after the hold, available unless a reserve or a dispute holds it back), idempotency of
every write, and the errors a caller sees. Each step commits, as the activities do."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from ledger_core import NormalBalance, ValidationFailed
from ledger_core.schema import ledger_accounts, ledger_transactions
from marketplace import (
    DisputeAlreadyResolved,
    DisputeConflict,
    DisputeNotFound,
    EarningConflict,
    EarningStatus,
    InvalidEarningState,
    Marketplace,
    PlatformAccount,
    RollingReserve,
    SellerBalances,
    SellerExists,
    SellerNotFound,
)


def balances(engine: Engine, mp: Marketplace, seller_id: str) -> SellerBalances:
    with engine.begin() as conn:
        return mp.seller_balances(conn, seller_id)


def views(b: SellerBalances) -> dict[str, int]:
    return {
        "pending": b.pending,
        "posted": b.posted,
        "available": b.available,
        "on_hold": b.on_hold,
        "in_reserve": b.in_reserve,
        "in_dispute": b.in_dispute,
    }


def make_seller(engine: Engine, mp: Marketplace, seller_id: str, **kwargs: object) -> None:
    with engine.begin() as conn:
        mp.create_seller(conn, seller_id=seller_id, name="Shop", currency="USD", **kwargs)  # type: ignore[arg-type]


def transactions_with_external_id(engine: Engine, external_id: str) -> int:
    with engine.begin() as conn:
        return conn.execute(
            select(func.count())
            .select_from(ledger_transactions)
            .where(ledger_transactions.c.external_id == external_id)
        ).scalar_one()


def test_earning_is_pending_then_posted_and_available(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    seller = f"s-{uid}"
    make_seller(engine, marketplace, seller)
    assert views(balances(engine, marketplace, seller)) == dict.fromkeys(
        ["pending", "posted", "available", "on_hold", "in_reserve", "in_dispute"], 0
    )

    booked_at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    with engine.begin() as conn:
        earning = marketplace.book_earning(
            conn,
            seller_id=seller,
            order_id=f"o-{uid}",
            amount=10_000,
            fee=1_200,
            metadata={"sku": "mug"},
            booked_at=booked_at,
        )
    assert (earning.status, earning.net, earning.hold_until) == (
        EarningStatus.ON_HOLD,
        8_800,
        booked_at + timedelta(days=7),
    )
    # Step 1: pending grows; posted and available do not.
    assert views(balances(engine, marketplace, seller)) == {
        "pending": 8_800,
        "posted": 0,
        "available": 0,
        "on_hold": 8_800,
        "in_reserve": 0,
        "in_dispute": 0,
    }

    # Step 2 and 3: the hold ends, the earning posts; nothing holds it back, so it is available.
    with engine.begin() as conn:
        posted = marketplace.post_earning(conn, seller, f"o-{uid}")
    assert posted.status is EarningStatus.POSTED and posted.posted_at is not None
    assert views(balances(engine, marketplace, seller)) == {
        "pending": 8_800,
        "posted": 8_800,
        "available": 8_800,
        "on_hold": 0,
        "in_reserve": 0,
        "in_dispute": 0,
    }
    with engine.begin() as conn:
        holds = marketplace.list_holds(conn, seller)
        all_earnings = marketplace.list_earnings(conn, seller)
    assert holds.items == []
    assert [e.order_id for e in all_earnings.items] == [f"o-{uid}"]


def test_rolling_reserve_is_posted_but_not_available_until_released(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    seller = f"s-{uid}"
    make_seller(
        engine, marketplace, seller, rolling_reserve=RollingReserve(1_000, timedelta(days=90))
    )
    at = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as conn:
        marketplace.book_earning(conn, seller_id=seller, order_id=f"o-{uid}", amount=5_005, fee=5)
        earning = marketplace.post_earning(conn, seller, f"o-{uid}", at=at)
    # 10% of net 5,000, rounded down, held back for 90 days from the posting.
    assert (earning.reserve_amount, earning.reserve_release_at) == (500, at + timedelta(days=90))
    assert earning.reserve_open
    assert views(balances(engine, marketplace, seller)) == {
        "pending": 4_500,
        "posted": 5_000,
        "available": 4_500,
        "on_hold": 0,
        "in_reserve": 500,
        "in_dispute": 0,
    }
    with engine.begin() as conn:
        released = marketplace.release_reserve(conn, seller, f"o-{uid}")
        again = marketplace.release_reserve(conn, seller, f"o-{uid}")
    assert released.reserve_released_at is not None and not released.reserve_open
    assert again.reserve_released_at == released.reserve_released_at
    assert views(balances(engine, marketplace, seller)) == {
        "pending": 5_000,
        "posted": 5_000,
        "available": 5_000,
        "on_hold": 0,
        "in_reserve": 0,
        "in_dispute": 0,
    }
    assert transactions_with_external_id(engine, f"reserve:{seller}/o-{uid}") == 1


def test_dispute_lowers_available_not_posted_and_resolves(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    seller = f"s-{uid}"
    make_seller(engine, marketplace, seller)
    deadline = datetime.now(UTC) + timedelta(days=30)
    with engine.begin() as conn:
        marketplace.book_earning(conn, seller_id=seller, order_id=f"o-{uid}", amount=10_000)
        marketplace.post_earning(conn, seller, f"o-{uid}")
        dispute = marketplace.open_dispute(
            conn,
            dispute_id=f"d1-{uid}",
            seller_id=seller,
            order_id=f"o-{uid}",
            amount=3_000,
            reason="fraudulent",
            deadline=deadline,
        )
    assert dispute.status == "open"
    assert views(balances(engine, marketplace, seller)) == {
        "pending": 7_000,
        "posted": 10_000,
        "available": 7_000,
        "on_hold": 0,
        "in_reserve": 0,
        "in_dispute": 3_000,
    }
    with engine.begin() as conn:
        won = marketplace.resolve_dispute(conn, f"d1-{uid}", "won")
    assert won.status == "won" and won.resolved_at is not None
    assert views(balances(engine, marketplace, seller))["available"] == 10_000

    with engine.begin() as conn:
        marketplace.open_dispute(
            conn,
            dispute_id=f"d2-{uid}",
            seller_id=seller,
            order_id=f"o-{uid}",
            amount=2_500,
            deadline=deadline,
        )
        lost = marketplace.resolve_dispute(conn, f"d2-{uid}", "lost")
    assert lost.status == "lost"
    assert views(balances(engine, marketplace, seller)) == {
        "pending": 7_500,
        "posted": 7_500,
        "available": 7_500,
        "on_hold": 0,
        "in_reserve": 0,
        "in_dispute": 0,
    }
    # A dispute may take available below zero: a chargeback is not optional.
    with engine.begin() as conn:
        marketplace.open_dispute(
            conn,
            dispute_id=f"d3-{uid}",
            seller_id=seller,
            order_id=f"o-{uid}",
            amount=9_000,
            deadline=deadline,
        )
    assert balances(engine, marketplace, seller).available == -1_500
    with engine.begin() as conn:
        listed = marketplace.list_disputes(conn, seller_id=seller)
    assert [d.id for d in listed.items] == [f"d1-{uid}", f"d2-{uid}", f"d3-{uid}"]


def test_cancel_during_hold_archives_the_earning(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    seller = f"s-{uid}"
    make_seller(engine, marketplace, seller)
    with engine.begin() as conn:
        marketplace.book_earning(conn, seller_id=seller, order_id=f"a-{uid}", amount=4_000, fee=400)
        marketplace.book_earning(conn, seller_id=seller, order_id=f"b-{uid}", amount=1_000)
        cancelled = marketplace.cancel_earning(conn, seller, f"a-{uid}")
        assert (
            marketplace.cancel_earning(conn, seller, f"a-{uid}").cancelled_at
            == cancelled.cancelled_at
        )
    assert cancelled.status is EarningStatus.CANCELLED
    assert views(balances(engine, marketplace, seller))["pending"] == 1_000
    with engine.begin() as conn, pytest.raises(InvalidEarningState) as posting_cancelled:
        marketplace.post_earning(conn, seller, f"a-{uid}")
    assert posting_cancelled.value.code == "invalid_earning_state"
    with engine.begin() as conn:
        marketplace.post_earning(conn, seller, f"b-{uid}")
    with engine.begin() as conn, pytest.raises(InvalidEarningState):
        marketplace.cancel_earning(conn, seller, f"b-{uid}")
    assert views(balances(engine, marketplace, seller)) == {
        "pending": 1_000,
        "posted": 1_000,
        "available": 1_000,
        "on_hold": 0,
        "in_reserve": 0,
        "in_dispute": 0,
    }


def test_every_write_is_idempotent_and_conflicts_are_reported(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    seller, other = f"s-{uid}", f"t-{uid}"
    make_seller(engine, marketplace, seller)
    make_seller(engine, marketplace, seller)  # the same request again: the same seller
    make_seller(engine, marketplace, other)
    with engine.begin() as conn, pytest.raises(SellerExists) as exists:
        marketplace.create_seller(conn, seller_id=seller, name="Other name", currency="USD")
    assert exists.value.code == "seller_exists"

    order = f"o-{uid}"
    with engine.begin() as conn:
        first = marketplace.book_earning(conn, seller_id=seller, order_id=order, amount=700, fee=70)
    with engine.begin() as conn:
        second = marketplace.book_earning(
            conn, seller_id=seller, order_id=order, amount=700, fee=70
        )
    assert second == first
    for attempt in (
        {"seller_id": seller, "amount": 701, "fee": 70},
        {"seller_id": seller, "amount": 700, "fee": 0},
    ):
        with engine.begin() as conn, pytest.raises(EarningConflict) as conflict:
            marketplace.book_earning(conn, order_id=order, **attempt)  # type: ignore[arg-type]
        assert conflict.value.code == "earning_conflict"
    assert transactions_with_external_id(engine, f"earning:{seller}/{order}") == 1
    # The same order for another seller (a multi-seller cart) is another earning.
    with engine.begin() as conn:
        theirs = marketplace.book_earning(conn, seller_id=other, order_id=order, amount=300)
    assert (theirs.seller_id, theirs.net) == (other, 300)
    assert transactions_with_external_id(engine, f"earning:{other}/{order}") == 1

    with engine.begin() as conn:
        marketplace.post_earning(conn, seller, order)
    with engine.begin() as conn:
        assert marketplace.post_earning(conn, seller, order).status is EarningStatus.POSTED
        # A duplicate booking after the posting returns the earning as it is now.
        again = marketplace.book_earning(conn, seller_id=seller, order_id=order, amount=700, fee=70)
    assert again.status is EarningStatus.POSTED
    assert balances(engine, marketplace, seller).posted == 630

    deadline = datetime.now(UTC) + timedelta(days=10)
    dispute = {
        "dispute_id": f"d-{uid}",
        "seller_id": seller,
        "order_id": order,
        "deadline": deadline,
    }
    with engine.begin() as conn:
        opened = marketplace.open_dispute(conn, amount=100, **dispute)  # type: ignore[arg-type]
        assert marketplace.open_dispute(conn, amount=100, **dispute) == opened  # type: ignore[arg-type]
    with engine.begin() as conn, pytest.raises(DisputeConflict):
        marketplace.open_dispute(conn, amount=101, **dispute)  # type: ignore[arg-type]
    with engine.begin() as conn:
        marketplace.resolve_dispute(conn, f"d-{uid}", "lost")
        assert marketplace.resolve_dispute(conn, f"d-{uid}", "lost").status == "lost"
    with engine.begin() as conn, pytest.raises(DisputeAlreadyResolved) as resolved:
        marketplace.resolve_dispute(conn, f"d-{uid}", "won")
    assert resolved.value.code == "dispute_already_resolved"
    assert transactions_with_external_id(engine, f"dispute:d-{uid}") == 1
    assert views(balances(engine, marketplace, seller))["posted"] == 530


def test_hold_period_changes_apply_to_future_earnings(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    seller = f"s-{uid}"
    make_seller(engine, marketplace, seller, hold_period=timedelta(days=7))
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        before = marketplace.book_earning(
            conn, seller_id=seller, order_id=f"a-{uid}", amount=100, booked_at=at
        )
        updated = marketplace.update_seller(conn, seller, hold_period=timedelta(days=1))
        after = marketplace.book_earning(
            conn, seller_id=seller, order_id=f"b-{uid}", amount=100, booked_at=at
        )
        extended = marketplace.extend_hold(conn, seller, f"b-{uid}", at + timedelta(days=3))
        with pytest.raises(ValidationFailed):
            marketplace.extend_hold(conn, seller, f"b-{uid}", at + timedelta(days=2))
        unchanged = marketplace.get_earning(conn, seller, f"a-{uid}")
    assert updated.hold_period == timedelta(days=1)
    assert before.hold_until == unchanged.hold_until == at + timedelta(days=7)
    assert after.hold_until == at + timedelta(days=1)
    assert extended.hold_until == at + timedelta(days=3)


def test_invalid_requests_are_validation_errors(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    seller = f"s-{uid}"
    make_seller(engine, marketplace, seller)
    bad = [
        {"amount": 100, "fee": 101},
        {"amount": 0, "fee": 0},
        {"amount": 10.5, "fee": 0},
        {"amount": True, "fee": 0},
        {"amount": 100, "fee": -1},
    ]
    for attempt in bad:
        with engine.begin() as conn, pytest.raises(ValidationFailed):
            marketplace.book_earning(conn, seller_id=seller, order_id=f"o-{uid}", **attempt)  # type: ignore[arg-type]
    with engine.begin() as conn, pytest.raises(SellerNotFound) as missing:
        marketplace.book_earning(conn, seller_id=f"nobody-{uid}", order_id=f"o-{uid}", amount=1)
    assert missing.value.code == "seller_not_found"
    with engine.begin() as conn, pytest.raises(ValidationFailed):
        marketplace.create_seller(conn, seller_id="has space", name="x", currency="USD")
    with engine.begin() as conn, pytest.raises(ValidationFailed):
        marketplace.create_seller(
            conn,
            seller_id=f"r-{uid}",
            name="x",
            currency="USD",
            rolling_reserve=RollingReserve(20_000, timedelta(days=1)),
        )
    with engine.begin() as conn, pytest.raises(DisputeNotFound):
        marketplace.resolve_dispute(conn, f"nope-{uid}", "won")
    # The fee may be the whole amount: the seller earns nothing, the platform keeps the fee.
    with engine.begin() as conn:
        all_fee = marketplace.book_earning(
            conn, seller_id=seller, order_id=f"f-{uid}", amount=300, fee=300
        )
    assert all_fee.net == 0 and balances(engine, marketplace, seller).pending == 0


def test_sellers_are_listed_by_id_with_a_cursor(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    ids = [f"p{uid}-{i}" for i in range(5)]
    for seller_id in ids:
        make_seller(engine, marketplace, seller_id)
    seen: list[str] = []
    after = f"p{uid}"
    with engine.begin() as conn:
        while True:
            page = marketplace.list_sellers(conn, after=after, limit=2)
            seen += [s.id for s in page.items if s.id.startswith(f"p{uid}-")]
            if page.next_after is None or not page.next_after.startswith(f"p{uid}-"):
                break
            after = page.next_after
    assert seen == ids


def test_platform_ledger_is_created_once_under_concurrency_and_sums_to_zero(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    currency = "XTS"  # ISO 4217's code for testing: no other test uses it
    results: list[object] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        try:
            with engine.begin() as conn:
                results.append(marketplace.platform_ledger(conn, currency, livemode=True))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({getattr(r, "ledger_id", r) for r in results}) == 1, results

    with engine.begin() as conn:
        platform = marketplace.platform_ledger(conn, currency, livemode=True)
        marketplace.create_seller(
            conn,
            seller_id=f"z-{uid}",
            name="Z",
            currency=currency,
            rolling_reserve=RollingReserve(500, timedelta(days=1)),
        )
        marketplace.book_earning(
            conn, seller_id=f"z-{uid}", order_id=f"z1-{uid}", amount=1_000, fee=90
        )
        marketplace.book_earning(
            conn, seller_id=f"z-{uid}", order_id=f"z2-{uid}", amount=2_000, fee=0
        )
        marketplace.post_earning(conn, f"z-{uid}", f"z1-{uid}")
        marketplace.open_dispute(
            conn,
            dispute_id=f"zd-{uid}",
            seller_id=f"z-{uid}",
            order_id=f"z1-{uid}",
            amount=300,
            deadline=datetime.now(UTC),
        )
        accounts = conn.execute(
            select(ledger_accounts).where(ledger_accounts.c.ledger_id == platform.ledger_id)
        ).all()
    normals = {
        role: next(a.normal_balance for a in accounts if a.id == platform.account(role))
        for role in PlatformAccount
    }
    assert normals == {
        PlatformAccount.CLEARING: "debit",
        PlatformAccount.FEES_REVENUE: "credit",
        PlatformAccount.PAYOUTS_IN_TRANSIT: "credit",
        PlatformAccount.ROLLING_RESERVE: "credit",
        PlatformAccount.DISPUTES: "credit",
    }
    # Every transaction balances, so the debit-normal balances equal the credit-normal ones.
    for debits, credits in (
        ("posted_debits", "posted_credits"),
        ("pending_debits", "pending_credits"),
    ):
        debit_normal = sum(
            getattr(a, debits) - getattr(a, credits)
            for a in accounts
            if a.normal_balance == NormalBalance.DEBIT
        )
        credit_normal = sum(
            getattr(a, credits) - getattr(a, debits)
            for a in accounts
            if a.normal_balance == NormalBalance.CREDIT
        )
        assert debit_normal == credit_normal > 0
