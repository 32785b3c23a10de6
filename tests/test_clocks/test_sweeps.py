"""The dispatcher's sweeps look at timers in wall time: a seller's or wallet's timer in its
test clock's time (a clock far in the wall clock's past) is not a lost wake. The clock's advance
wakes them instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from marketplace import Marketplace
from marketplace.test_clocks import TestClocks

PAST = datetime(2020, 1, 6, 9, tzinfo=UTC)


def test_clocked_timers_are_not_swept(engine: Engine, uid: str) -> None:
    market, clocks = Marketplace(), TestClocks()
    prefix = f"sweep-{uid}-"
    live, clocked = f"{prefix}live", f"{prefix}clocked"
    with engine.begin() as conn:
        clocks.create_clock(conn, clock_id=f"clock-{uid}", name="Past", frozen_time=PAST)
        market.create_seller(conn, seller_id=live, name="L", currency="USD")
        market.create_seller(
            conn,
            seller_id=clocked,
            name="C",
            currency="USD",
            test_clock_id=f"clock-{uid}",
            livemode=False,
        )
        for seller in (live, clocked):
            market.book_earning(conn, seller_id=seller, order_id="o-1", amount=100)
    for seller in (live, clocked):
        with engine.begin() as conn:  # a turn's writes go with its commit
            turn = market.holds.settle_due(conn, seller, at=PAST, window=timedelta(0))
            assert turn.posted == 0
    with engine.begin() as conn:
        # Both timers are in the wall clock's past; the live one by an operator's edit.
        conn.execute(
            text("UPDATE seller_hold_clocks SET timer_at = :at WHERE seller_id = :s"),
            {"at": PAST + timedelta(days=7), "s": live},
        )
        clock = market.holds.clock(conn, clocked)
        assert (clock.timer_at, clock.test_clock_id) == (PAST + timedelta(days=7), f"clock-{uid}")
        wallet, _ = market.create_wallet(
            conn,
            wallet_id=f"{prefix}w",
            owner="u",
            name="W",
            currency="USD",
            test_clock_id=f"clock-{uid}",
            livemode=False,
        )
        lot = market.top_up(
            conn, wallet.id, amount=100, settled=True, expires_at=PAST + timedelta(days=1)
        )
        assert lot.settled_at == PAST  # the wallet's now is its clock's
        turn = market.expire_due(conn, wallet.id, at=datetime.now(UTC))
        # Expired by the clock's time (not the wall clock's): nothing yet.
        assert (turn.expired_lots, turn.timer_at) == (0, PAST + timedelta(days=1))
    with engine.connect() as conn:
        swept = market.holds.sellers_to_wake(conn, grace=timedelta(0), prefix=prefix)
        wallets = market.wallets_to_wake(conn, grace=timedelta(0), prefix=prefix)
    assert swept == [live]
    assert wallets == []
