"""A wallet's statement against the ledger: top-ups (settled later, and at once), a spend and its
refund, transfers both ways, an expiry; a pending top-up is no line; periods chain."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from ledger_core.checks import utc_now
from marketplace import Marketplace
from marketplace.statements import StatementKind
from tests.statements.helpers import assert_adds_up, new_wallet, wallet_statement

K = StatementKind


def test_every_kind_of_wallet_line_adds_up_and_periods_chain(
    engine: Engine, marketplace: Marketplace
) -> None:
    mp = marketplace
    t0 = utc_now()
    w, other = new_wallet(engine, mp, "Alice"), new_wallet(engine, mp, "Bob")
    with engine.begin() as conn:
        a = mp.top_up(conn, w, amount=10_000)  # pending until it settles
        mp.top_up(conn, other, amount=4_000, settled=True)
    with engine.begin() as conn:
        mp.settle_top_up(conn, w, a.id)
    with engine.begin() as conn:
        spend = mp.spend(conn, w, amount=2_500, description="coffee beans")
    with engine.begin() as conn:
        refund = mp.refund_spend(conn, w, spend.id, amount=1_000)
    t1 = utc_now()
    with engine.begin() as conn:
        # Expires a millisecond after the top-up's own now (given, so that a slow machine
        # between the two readings does not make the expiry a past one).
        now = utc_now()
        expiring = mp.top_up(
            conn, w, amount=5_000, settled=True, expires_at=now + timedelta(milliseconds=1), now=now
        )
    with engine.begin() as conn:
        out = mp.transfer(conn, from_wallet_id=w, to_wallet_id=other, amount=1_500)
    with engine.begin() as conn:
        into = mp.transfer(conn, from_wallet_id=other, to_wallet_id=w, amount=800)
    assert expiring.expires_at is not None
    with engine.begin() as conn:
        mp.expire_due(conn, w, at=expiring.expires_at)
    with engine.begin() as conn:
        mp.top_up(conn, w, amount=999)  # pending at the close: no line, and not held
    t2 = max(utc_now(), expiring.expires_at) + timedelta(microseconds=1)

    first = wallet_statement(engine, mp, w, t0, t1)
    second = wallet_statement(engine, mp, w, t1, t2)
    for statement in (first, second):
        assert_adds_up(statement)
    assert first.opening == 0
    assert [(line.kind, line.reference, line.amount) for line in first.lines] == [
        (K.TOP_UP, a.id, 10_000),
        (K.SPEND, spend.id, -2_500),
        (K.SPEND_REFUND, refund.id, 1_000),
    ]
    assert first.closing == 8_500
    assert second.opening == first.closing
    # The expiry counts at the lot's expiry time (written posted, effective then), which may come
    # before or after the transfers: compare without the order (assert_adds_up checked it).
    by_kind = {line.kind: line for line in second.lines}
    assert len(by_kind) == len(second.lines) == 4
    assert (by_kind[K.TOP_UP].reference, by_kind[K.TOP_UP].amount) == (expiring.id, 5_000)
    assert (by_kind[K.TRANSFER_OUT].reference, by_kind[K.TRANSFER_OUT].amount) == (out.id, -1_500)
    assert (by_kind[K.TRANSFER_IN].reference, by_kind[K.TRANSFER_IN].amount) == (into.id, 800)
    assert by_kind[K.EXPIRY].reference == expiring.id and by_kind[K.EXPIRY].amount < 0
    assert by_kind[K.EXPIRY].at == expiring.expires_at
    assert second.held_at_close == ()
    with engine.connect() as conn:
        assert mp.wallet_balances(conn, w).posted == second.closing

    # The other side of the transfers, in the other wallet's statement.
    bob = wallet_statement(engine, mp, other, t0, t2)
    assert [(line.kind, line.amount) for line in bob.lines] == [
        (K.TOP_UP, 4_000),
        (K.TRANSFER_IN, 1_500),
        (K.TRANSFER_OUT, -800),
    ]
