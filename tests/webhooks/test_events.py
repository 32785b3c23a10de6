"""The outbox: which changes record which events, numbered per seller in commit order, fanned
out to the subscribed endpoints with a notification at commit; replays and rolled-back changes
record nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from marketplace import DisputeOutcome, Marketplace, Payouts, Refunds, RollingReserve
from marketplace.webhooks import NOTIFY_CHANNEL, Webhooks
from payment_rail import ACCOUNT_PAID, TEST_ROUTING_NUMBER
from server.dispatcher import libpq_url
from tests.helpers import run_in_threads
from tests.webhooks.conftest import new_seller, seller_events

market = Marketplace()
payouts = Payouts(market)
refunds = Refunds(market)


def types(events: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    return [t for _, t, _ in events]


def balances(events: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[int, int]]:
    """(previous_available, available) of each balance event."""
    return [
        (d["object"]["previous_available"], d["object"]["available"])
        for _, t, d in events
        if t == "balance.available_changed"
    ]


def test_an_earnings_life_records_its_events_in_order_and_replays_record_none(
    engine: Engine,
) -> None:
    seller = new_seller(engine, reserve=RollingReserve(1_000, timedelta(days=1)))
    order, dispute = f"o-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
    deadline = datetime.now(UTC) + timedelta(days=7)
    for _ in range(2):  # the second round replays every step: nothing new
        with engine.begin() as conn:
            market.book_earning(conn, seller_id=seller, order_id=order, amount=10_000, fee=1_000)
        with engine.begin() as conn:
            market.post_earning(conn, seller, order)
        with engine.begin() as conn:
            market.release_reserve(conn, seller, order)
        with engine.begin() as conn:
            market.open_dispute(
                conn,
                dispute_id=dispute,
                seller_id=seller,
                order_id=order,
                amount=2_000,
                deadline=deadline,
            )
        with engine.begin() as conn:
            market.resolve_dispute(conn, dispute, DisputeOutcome.LOST)

    events = seller_events(engine, seller)
    assert [s for s, _, _ in events] == list(range(1, len(events) + 1))
    assert types(events) == [
        "earning.created",
        "earning.posted",
        "balance.available_changed",  # posted 9,000 less the 900 reserve
        "balance.available_changed",  # reserve released
        "dispute.opened",
        "balance.available_changed",  # 2,000 in dispute
        "dispute.lost",  # posting the debit moves posted, not available: no balance event
    ]
    assert balances(events) == [(0, 8_100), (8_100, 9_000), (9_000, 7_000)]
    created = events[0][2]["object"]
    assert created["object"] == "earning" and created["order_id"] == order
    assert (created["amount"], created["fee"], created["net"], created["status"]) == (
        10_000,
        1_000,
        9_000,
        "on_hold",
    )
    assert events[1][2]["object"]["status"] == "posted"
    assert events[1][2]["object"]["reserve_amount"] == 900
    assert events[4][2]["object"]["id"] == dispute
    assert events[6][2]["object"]["status"] == "lost"
    last = events[5][2]["object"]
    assert (last["pending"], last["posted"], last["available"]) == (7_000, 9_000, 7_000)


def test_payouts_record_created_paid_returned_and_failed(engine: Engine) -> None:
    seller = new_seller(engine)
    with engine.begin() as conn:
        payouts.set_payout_account(conn, seller, ACCOUNT_PAID, TEST_ROUTING_NUMBER, "Jane")
        market.book_earning(conn, seller_id=seller, order_id=f"o-{seller}", amount=5_000)
        market.post_earning(conn, seller, f"o-{seller}")
    paid, failed = f"po-{seller}-1", f"po-{seller}-2"
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=paid, seller_id=seller, amount=3_000)
    with engine.begin() as conn:
        payouts.begin_submission(conn, paid)
        payouts.mark_submitted(conn, paid, "rail-1")
        payouts.mark_paid(conn, paid)
        payouts.mark_paid(conn, paid)  # a duplicate webhook
    with engine.begin() as conn:
        payouts.mark_returned(conn, paid, "R03", "no account")
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=failed, seller_id=seller)
        payouts.mark_failed(conn, failed, "account_closed", "closed")

    events = seller_events(engine, seller)
    assert types(events) == [
        "earning.created",
        "earning.posted",
        "balance.available_changed",
        "payout.created",
        "balance.available_changed",
        "payout.paid",
        "payout.returned",
        "balance.available_changed",
        "payout.created",
        "balance.available_changed",
        "payout.failed",
        "balance.available_changed",
    ]
    assert balances(events) == [
        (0, 5_000),
        (5_000, 2_000),
        (2_000, 5_000),
        (5_000, 0),
        (0, 5_000),
    ]
    payout = events[3][2]["object"]
    assert payout["id"] == paid and payout["amount"] == 3_000
    assert payout["account_number_masked"].endswith(ACCOUNT_PAID[-4:])
    assert ACCOUNT_PAID not in str(events), "the full account number never leaves in an event"
    assert events[6][2]["object"]["failure_code"] == "R03"
    assert events[10][2]["object"]["status"] == "failed"


def test_refunds_during_the_hold_and_after_posting(engine: Engine) -> None:
    seller = new_seller(engine, hold=timedelta(days=7))
    held, posted = f"o-{seller}-held", f"o-{seller}-posted"
    with engine.begin() as conn:
        market.book_earning(conn, seller_id=seller, order_id=held, amount=1_000)
        market.book_earning(conn, seller_id=seller, order_id=posted, amount=2_000)
        market.post_earning(conn, seller, posted)
    with engine.begin() as conn:
        refunds.refund_earning(
            conn, refund_id=f"r-{seller}-1", seller_id=seller, order_id=held, amount=400
        )
        refunds.refund_earning(
            conn, refund_id=f"r-{seller}-2", seller_id=seller, order_id=posted, amount=500
        )
        refunds.refund_earning(
            conn, refund_id=f"r-{seller}-2", seller_id=seller, order_id=posted, amount=500
        )

    events = seller_events(engine, seller)
    assert types(events) == [
        "earning.created",
        "earning.created",
        "earning.posted",
        "balance.available_changed",
        "earning.refunded",  # on hold: available does not move
        "earning.refunded",
        "balance.available_changed",
    ]
    during, after = events[4][2], events[5][2]
    assert during["refund"]["kind"] == "during_hold" and during["refund"]["amount"] == 400
    assert during["object"]["order_id"] == held
    assert after["refund"]["kind"] == "after_posting" and after["object"]["order_id"] == posted
    assert balances(events) == [(0, 2_000), (2_000, 1_500)]


def test_a_rolled_back_change_records_nothing_and_the_sequence_stays_gapless(
    engine: Engine,
) -> None:
    seller = new_seller(engine)
    with engine.connect() as conn:
        transaction = conn.begin()
        market.book_earning(conn, seller_id=seller, order_id=f"o-{seller}-1", amount=100)
        transaction.rollback()
    assert seller_events(engine, seller) == []
    with engine.begin() as conn:
        market.book_earning(conn, seller_id=seller, order_id=f"o-{seller}-2", amount=100)
    assert [(s, t) for s, t, _ in seller_events(engine, seller)] == [(1, "earning.created")]


def test_events_fan_out_to_subscribed_live_endpoints_with_a_notification_at_commit(
    engine: Engine, endpoints: list[Any]
) -> None:
    hooks = Webhooks()
    with engine.begin() as conn:
        only_paid = hooks.create_endpoint(
            conn, url="https://example.test/paid", event_types=["payout.paid"]
        )
        everything = hooks.create_endpoint(conn, url="https://example.test/all", event_types=["*"])
        earnings_ = hooks.create_endpoint(
            conn,
            url="https://example.test/earnings",
            event_types=["earning.created", "earning.posted"],
        )
        gone = hooks.create_endpoint(conn, url="https://example.test/gone", event_types=["*"])
    endpoints += [only_paid, everything, earnings_, gone]
    with engine.begin() as conn:
        hooks.delete_endpoint(conn, gone.id)
    seller = new_seller(engine)

    listener = psycopg.connect(libpq_url(str(engine.url.render_as_string(False))), autocommit=True)
    try:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        with engine.begin() as conn:
            market.book_earning(conn, seller_id=seller, order_id=f"o-{seller}", amount=700)
            market.post_earning(conn, seller, f"o-{seller}")
            assert not list(listener.notifies(timeout=0.2)), "nothing is told before the commit"
        told = {n.payload for n in listener.notifies(timeout=2, stop_after=2)}
    finally:
        listener.close()
    assert told == {f"{everything.id} {seller}", f"{earnings_.id} {seller}"}

    with engine.connect() as conn:
        got = {
            e.id: [(d.sequence, d.event_type, d.status.value) for d in page.items]
            for e in (only_paid, everything, earnings_, gone)
            for page in [hooks.list_deliveries(conn, endpoint_id=e.id, seller_id=seller)]
        }
    assert got[only_paid.id] == [] and got[gone.id] == []
    assert got[everything.id] == [
        (1, "earning.created", "pending"),
        (2, "earning.posted", "pending"),
        (3, "balance.available_changed", "pending"),
    ]
    assert got[earnings_.id] == got[everything.id][:2]


def test_deleting_an_endpoint_cancels_its_pending_deliveries(
    engine: Engine, endpoints: list[Any]
) -> None:
    hooks = Webhooks()
    with engine.begin() as conn:
        endpoint = hooks.create_endpoint(conn, url="http://127.0.0.1:9/x", event_types=["*"])
    endpoints.append(endpoint)
    seller = new_seller(engine)
    with engine.begin() as conn:
        market.book_earning(conn, seller_id=seller, order_id=f"o-{seller}", amount=1)
    with engine.begin() as conn:
        hooks.delete_endpoint(conn, endpoint.id)
        hooks.delete_endpoint(conn, endpoint.id)
    with engine.connect() as conn:
        (delivery,) = hooks.list_deliveries(conn, endpoint_id=endpoint.id).items
        assert delivery.status.value == "cancelled"
        assert hooks.delivery_request(conn, delivery.id) is None
        assert hooks.pending_deliveries(conn, endpoint.id, seller) == []


def test_concurrent_changes_of_one_seller_number_their_events_in_commit_order(
    engine: Engine,
) -> None:
    seller = new_seller(engine)

    def work(n: int) -> None:
        for i in range(5):
            order = f"o-{seller}-{n}-{i}"
            with engine.begin() as conn:
                market.book_earning(conn, seller_id=seller, order_id=order, amount=100 + n)
            with engine.begin() as conn:
                market.post_earning(conn, seller, order)

    errors = run_in_threads(work, 6)
    assert not errors, errors
    events = seller_events(engine, seller)
    assert [s for s, _, _ in events] == list(range(1, 6 * 5 * 3 + 1))
    chain = balances(events)
    assert len(chain) == 30
    # Each balance event starts where the one before it ended, and the last is the balance.
    assert all(chain[i][0] == chain[i - 1][1] for i in range(1, len(chain)))
    assert chain[0][0] == 0
    with engine.connect() as conn:
        assert (
            market.seller_balances(conn, seller).available
            == chain[-1][1]
            == sum((100 + n) * 5 for n in range(6))
        )


def test_an_event_row_cannot_be_an_unknown_type(engine: Engine) -> None:
    seller = new_seller(engine)
    with pytest.raises(Exception, match="ck_events_type"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (id, seller_id, sequence, type, data) "
                "VALUES (:id, :s, 1, 'earning.teleported', '{}')"
            ),
            {"id": f"evt_{uuid.uuid4().hex}", "s": seller},
        )
