"""A seller's running totals (``seller_balances``: on hold, in reserve, in dispute, in transit),
kept by PostgreSQL in the same transaction as the rows they sum, as the ledger keeps its
accounts' totals: after every kind of write they equal the sums recomputed here from the rows;
nothing else may write them; and reading a seller's balances is one statement that reads none
of the rows it sums, for a seller with 10 earnings as for one with 10,000."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from api.auth import ApiKeyRole
from ledger_core import LedgerService
from marketplace import (
    DisputeOutcome,
    EarningRequest,
    Marketplace,
    Payouts,
    Refunds,
    RollingReserve,
)
from server.database import create_db_engine
from tests.api.conftest import client_for, make_key

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def recomputed(conn: Connection, seller_id: str) -> dict[str, int]:
    """The totals summed in Python from the seller's rows, by the rules of DESIGN.md."""
    earnings = conn.execute(
        text("SELECT * FROM earnings WHERE seller_id = :s"), {"s": seller_id}
    ).all()
    disputes = conn.execute(
        text("SELECT amount, status FROM disputes WHERE seller_id = :s"), {"s": seller_id}
    ).all()
    payouts = conn.execute(
        text("SELECT amount, status FROM payouts WHERE seller_id = :s"), {"s": seller_id}
    ).all()
    on_hold = [e for e in earnings if e.status == "on_hold"]
    reserved = [
        e
        for e in earnings
        if e.reserve_transaction_id is not None and e.reserve_released_at is None
    ]
    return {
        # A refund during the hold takes the seller's share of it: floor(net * refunded / amount).
        "on_hold": sum(e.net - e.net * e.refunded_amount // e.amount for e in on_hold),
        "on_hold_count": len(on_hold),
        "in_reserve": sum(e.reserve_amount for e in reserved),
        "in_reserve_count": len(reserved),
        "in_dispute": sum(d.amount for d in disputes if d.status == "open"),
        "in_transit": sum(p.amount for p in payouts if p.status in ("pending", "processing")),
    }


def kept(conn: Connection, seller_id: str) -> dict[str, int]:
    row = conn.execute(
        text(
            "SELECT on_hold, on_hold_count, in_reserve, in_reserve_count, in_dispute, in_transit "
            "FROM seller_balances WHERE seller_id = :s"
        ),
        {"s": seller_id},
    ).one()
    return dict(row._mapping)


@pytest.fixture
def sellers(engine: Engine) -> list[str]:
    """Two sellers with a 10 % reserve for a day and a payout account."""
    run = uuid.uuid4().hex[:8]
    ids = [f"rt-{run}-a", f"rt-{run}-b"]
    market, payouts = Marketplace(), Payouts()
    with engine.begin() as conn:
        for seller_id in ids:
            market.create_seller(
                conn,
                seller_id=seller_id,
                name="Shop",
                currency="USD",
                hold_period=timedelta(days=2),
                rolling_reserve=RollingReserve(percent_bp=1_000, period=DAY),
            )
            payouts.set_payout_account(
                conn,
                seller_id=seller_id,
                account_number="000123456789",
                routing_number="110000000",
                holder_name="Owner",
            )
    return ids


def test_totals_equal_their_rows_after_every_kind_of_write(
    engine: Engine, sellers: list[str]
) -> None:
    market, payouts = Marketplace(), Payouts()
    refunds = Refunds(payouts.marketplace)
    a, b = sellers

    def check() -> None:
        with engine.connect() as conn:
            for seller_id in sellers:
                assert kept(conn, seller_id) == recomputed(conn, seller_id), seller_id
                balances = market.seller_balances(conn, seller_id)
                totals = kept(conn, seller_id)
                assert (
                    balances.on_hold,
                    balances.in_reserve,
                    balances.in_dispute,
                    balances.in_transit,
                ) == (
                    totals["on_hold"],
                    totals["in_reserve"],
                    totals["in_dispute"],
                    totals["in_transit"],
                )

    # One order paying both sellers (a multi-seller cart), and more for each, in one statement.
    with engine.begin() as conn:
        outcomes = market.book_earnings(
            conn,
            [
                EarningRequest(seller_id, f"o-{n}", 10_000 + 101 * n, 1_000 + n, {})
                for n in range(12)
                for seller_id in sellers
            ],
            now=NOW - 3 * DAY,
        )
    assert all(o.error is None and o.created for o in outcomes)
    check()

    with engine.begin() as conn:
        for n in range(6):  # posted: each holds back a reserve
            market.post_earning(conn, a, f"o-{n}", at=NOW - DAY / 2)
        market.post_earning(conn, b, "o-0", at=NOW - DAY / 2)
    check()
    with engine.begin() as conn:
        market.release_reserve(conn, a, "o-0")
        market.release_reserve(conn, a, "o-1")
        market.extend_hold(conn, b, "o-5", NOW + 10 * DAY)
        market.cancel_earning(conn, b, "o-6")
    check()

    with engine.begin() as conn:  # refunds: in part and in full, on hold and posted
        refunds.refund_earning(conn, refund_id=f"r1-{a}", seller_id=a, order_id="o-8", amount=333)
        refunds.refund_earning(conn, refund_id=f"r2-{a}", seller_id=a, order_id="o-8", amount=1)
        refunds.refund_earning(conn, refund_id=f"r3-{a}", seller_id=a, order_id="o-9")
        refunds.refund_earning(conn, refund_id=f"r4-{a}", seller_id=a, order_id="o-2", amount=500)
    check()

    with engine.begin() as conn:
        for n, seller_id in enumerate(sellers):
            for d in range(2):
                market.open_dispute(
                    conn,
                    dispute_id=f"d{d}-{seller_id}",
                    seller_id=seller_id,
                    order_id=f"o-{3 + d}",
                    amount=700 + 10 * n + d,
                    deadline=NOW + 14 * DAY,
                )
    check()
    with engine.begin() as conn:
        market.resolve_dispute(conn, f"d0-{a}", DisputeOutcome.WON)
        market.resolve_dispute(conn, f"d1-{b}", DisputeOutcome.LOST)
    check()

    payout_ids = [f"p{n}-{a}-{uuid.uuid4().hex[:6]}" for n in range(4)]
    with engine.begin() as conn:
        for n, payout_id in enumerate(payout_ids):
            payouts.reserve_payout(conn, payout_id=payout_id, seller_id=a, amount=1_000 + n)
    check()
    with engine.begin() as conn:
        for payout_id in payout_ids[:3]:
            payouts.begin_submission(conn, payout_id)
            payouts.mark_submitted(conn, payout_id, f"rail-{payout_id}")
        payouts.mark_paid(conn, payout_ids[0])
        payouts.mark_failed(conn, payout_ids[1], "account_closed", "closed")
        payouts.cancel_payout(conn, payout_ids[3])
    check()
    with engine.connect() as conn:
        totals = kept(conn, a)
    # The check is not vacuous: every total of the first seller is in use.
    assert all(value > 0 for value in totals.values()), totals


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE seller_balances SET on_hold = on_hold + 1 WHERE seller_id = :s",
        "DELETE FROM seller_balances WHERE seller_id = :s",
        "INSERT INTO seller_balances (seller_id) VALUES (:s || '-copy')",
    ],
)
def test_only_the_database_writes_the_totals(
    engine: Engine, sellers: list[str], statement: str
) -> None:
    with pytest.raises(DBAPIError) as failure, engine.begin() as conn:
        conn.execute(text(statement), {"s": sellers[0]})
    assert isinstance(failure.value.orig, psycopg.Error)
    assert failure.value.orig.sqlstate == "LC002"


# -- O(1) ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counting_app(database_url: str) -> Iterator[tuple[FastAPI, list[str]]]:
    """An app on an engine of its own, and the statements it sends."""
    engine = create_db_engine(database_url, pool_size=2)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    try:
        yield create_app(engine, LedgerService()), statements
    finally:
        engine.dispose()


def history(engine: Engine, seller_id: str, earnings: int) -> None:
    market = Marketplace()
    with engine.begin() as conn:
        market.create_seller(conn, seller_id=seller_id, name="Shop", currency="USD")
    for start in range(0, earnings, 1_000):
        with engine.begin() as conn:
            market.book_earnings(
                conn,
                [
                    EarningRequest(seller_id, f"o-{n}", 2_000 + n % 500, n % 7, {})
                    for n in range(start, min(earnings, start + 1_000))
                ],
                now=NOW - 3 * DAY,
            )
    with engine.begin() as conn:  # a few posted, disputed: every total is in the statement
        market.post_earning(conn, seller_id, "o-0", at=NOW)
        market.open_dispute(
            conn,
            dispute_id=f"d-{seller_id}",
            seller_id=seller_id,
            order_id="o-0",
            amount=100,
            deadline=NOW + DAY,
        )


def test_balances_are_one_statement_whatever_the_history(
    engine: Engine, counting_app: tuple[FastAPI, list[str]]
) -> None:
    app, statements = counting_app
    run = uuid.uuid4().hex[:8]
    small, large = f"o1-{run}-small", f"o1-{run}-large"
    history(engine, small, 10)
    history(engine, large, 10_000)
    with client_for(app, make_key(engine, ApiKeyRole.ADMIN)) as client:
        # The key, and each seller's mode (api.modes), are looked up once, then cached.
        for seller_id in (small, large):
            client.get(f"/v1/sellers/{seller_id}/balances")
        sent = {}
        for seller_id, count in ((small, 10), (large, 10_000)):
            statements.clear()
            response = client.get(f"/v1/sellers/{seller_id}/balances")
            assert response.status_code == 200, response.text
            assert response.json()["pending"]["amount"] > 0
            sent[count] = list(statements)
    assert len(sent[10]) == len(sent[10_000]) == 1, sent
    # And that one statement reads the seller, its account and its totals, none of the rows
    # they sum.
    [balances] = sent[10_000]
    with engine.connect() as conn:
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {balances}", {"seller": large}).scalars())
    for table in ("earnings", "disputes", "payouts", "ledger_entries", "ledger_transactions"):
        assert f" on {table} " not in plan.lower(), plan
