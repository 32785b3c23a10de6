"""Helpers of the statement tests: a seller and a wallet with every kind of line, written
in-process (each step commits, as the activities and the API do), and a statement over a window
of instants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from ledger_core import Direction, NewEntry, NewLedgerTransaction, TransactionStatus
from ledger_core.checks import utc_now
from marketplace import Marketplace, Payouts, PlatformAccount, Refunds, RollingReserve
from marketplace.statements import BalanceStatement, StatementPeriod, Statements

ACCOUNT = "000123456789"
ROUTING = "110000000"


def window(start: datetime, end: datetime) -> StatementPeriod:
    """A period over any two instants (the API's periods are whole days)."""
    return StatementPeriod(date(2000, 1, 1), date(2000, 1, 1), "UTC", start, end)


def seller_statement(
    engine: Engine, mp: Marketplace, seller_id: str, start: datetime, end: datetime
) -> BalanceStatement:
    with engine.connect() as conn:
        return Statements(mp).seller_statement(conn, seller_id, window(start, end))


def wallet_statement(
    engine: Engine, mp: Marketplace, wallet_id: str, start: datetime, end: datetime
) -> BalanceStatement:
    with engine.connect() as conn:
        return Statements(mp).wallet_statement(conn, wallet_id, window(start, end))


def assert_adds_up(statement: BalanceStatement) -> None:
    running = statement.opening
    for line in statement.lines:
        running += line.amount
        assert line.balance == running
    assert running == statement.closing
    assert [line.at for line in statement.lines] == sorted(line.at for line in statement.lines)


@dataclass
class SellerStory:
    seller_id: str
    t0: datetime
    """Before anything."""
    t1: datetime
    """Between the first part (earnings, refund, dispute, reserve) and the second (payouts,
    adjustments)."""
    t2: datetime
    """After everything."""
    backdated_at: datetime
    """The backdated adjustment's effective time (in [t0, t1), written after t1)."""


def platform_adjustment(
    engine: Engine,
    mp: Marketplace,
    seller_id: str,
    amount: int,
    effective_at: datetime | None = None,
    external_id: str | None = None,
) -> None:
    """A posted credit of the seller through the raw ledger (clearing -> seller)."""
    with engine.begin() as conn:
        seller = mp.get_seller(conn, seller_id)
        platform = mp.platform_ledger(conn, seller.currency, livemode=seller.livemode)
        mp.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=(
                    NewEntry(platform.account(PlatformAccount.CLEARING), Direction.DEBIT, amount),
                    NewEntry(seller.ledger_account_id, Direction.CREDIT, amount),
                ),
                status=TransactionStatus.POSTED,
                effective_at=effective_at,
                external_id=external_id,
                description="Goodwill credit",
            ),
        )


def paid_payout(
    engine: Engine, payouts: Payouts, seller_id: str, payout_id: str, amount: int
) -> None:
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=payout_id, seller_id=seller_id, amount=amount)
    with engine.begin() as conn:
        payouts.begin_submission(conn, payout_id)
        payouts.mark_submitted(conn, payout_id, f"rail-{payout_id}")
    with engine.begin() as conn:
        payouts.mark_paid(conn, payout_id)


def seller_story(engine: Engine, mp: Marketplace, uid: str) -> SellerStory:
    """Every kind of seller line: earnings posted after their hold (one with a rolling reserve
    held and released; one, ``o4``, booked in the first period and still on hold), a refund
    after posting, a lost dispute and a won one, a paid payout, a returned payout, a failed
    payout, an adjustment through the ledger, and a backdated one; held at the end: two
    reserves, a payout in transit and an open dispute."""
    payouts = Payouts(mp)
    refunds = Refunds(mp)
    seller = f"s-{uid}"
    t0 = utc_now()
    with engine.begin() as conn:
        mp.create_seller(
            conn,
            seller_id=seller,
            name="Bakery & Co",
            currency="USD",
            rolling_reserve=RollingReserve(percent_bp=1_000, period=timedelta(days=30)),
        )
        payouts.set_payout_account(conn, seller, ACCOUNT, ROUTING, "Jane Doe")
        mp.book_earning(conn, seller_id=seller, order_id=f"o1-{uid}", amount=10_000, fee=1_000)
        mp.book_earning(conn, seller_id=seller, order_id=f"o2-{uid}", amount=5_000, fee=500)
        mp.book_earning(conn, seller_id=seller, order_id=f"o3/{uid}", amount=2_000, fee=0)
        # Still on hold at the end of everything: no line, and not held back (a pending credit).
        mp.book_earning(conn, seller_id=seller, order_id=f"o4-{uid}", amount=800, fee=0)
    with engine.begin() as conn:  # the holds end: 9,000 + 4,500 + 2,000; reserves 900 + 450 + 200
        for order in (f"o1-{uid}", f"o2-{uid}", f"o3/{uid}"):
            mp.post_earning(conn, seller, order)
    with engine.begin() as conn:
        refunds.refund_earning(
            conn, refund_id=f"r1-{uid}", seller_id=seller, order_id=f"o1-{uid}", amount=2_000
        )  # seller's share 1,800
    with engine.begin() as conn:
        mp.open_dispute(
            conn,
            dispute_id=f"d1-{uid}",
            seller_id=seller,
            order_id=f"o2-{uid}",
            amount=1_500,
            deadline=utc_now() + timedelta(days=7),
        )
        mp.open_dispute(
            conn,
            dispute_id=f"d2-{uid}",
            seller_id=seller,
            order_id=f"o1-{uid}",
            amount=700,
            deadline=utc_now() + timedelta(days=7),
        )
    with engine.begin() as conn:
        mp.resolve_dispute(conn, f"d1-{uid}", "lost")
        mp.resolve_dispute(conn, f"d2-{uid}", "won")
        mp.release_reserve(conn, seller, f"o1-{uid}")
    t1 = utc_now()
    paid_payout(engine, payouts, seller, f"p1-{uid}", 3_000)
    paid_payout(engine, payouts, seller, f"p2-{uid}", 1_000)
    with engine.begin() as conn:
        payouts.mark_returned(conn, f"p2-{uid}", "R01", "account closed")
    with engine.begin() as conn:  # a failed payout: archived, no line
        payouts.reserve_payout(conn, payout_id=f"p3-{uid}", seller_id=seller, amount=500)
        payouts.mark_failed(conn, f"p3-{uid}", "R02", "no such account")
    platform_adjustment(engine, mp, seller, 250)
    backdated_at = t0 + (t1 - t0) / 2
    platform_adjustment(
        engine, mp, seller, 125, effective_at=backdated_at, external_id=f"fix-{uid}"
    )
    with engine.begin() as conn:  # held at the close: the reserves (o2, o3), a payout, a dispute
        payouts.reserve_payout(conn, payout_id=f"p4-{uid}", seller_id=seller, amount=400)
        mp.open_dispute(
            conn,
            dispute_id=f"d3-{uid}",
            seller_id=seller,
            order_id=f"o3/{uid}",
            amount=300,
            deadline=utc_now() + timedelta(days=7),
        )
    t2 = utc_now()
    return SellerStory(seller, t0, t1, t2, backdated_at)


def new_wallet(engine: Engine, mp: Marketplace, name: str) -> str:
    with engine.begin() as conn:
        wallet, _ = mp.create_wallet(
            conn, wallet_id=f"w-{uuid.uuid4().hex[:10]}", owner="user", name=name, currency="EUR"
        )
    return wallet.id
