"""A seller's statement against the ledger: every kind of line, opening + lines = closing,
consecutive periods chain, a backdated correction lands in its period, held-at-close, and a
closed period asked twice (with writes in between) is the same document."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from ledger_core import StatementTooLarge
from ledger_core.checks import utc_now
from marketplace import Marketplace, Payouts, SellerNotFound
from marketplace.statements import StatementKind, Statements
from tests.statements.helpers import (
    assert_adds_up,
    paid_payout,
    seller_statement,
    seller_story,
    window,
)

K = StatementKind


def test_every_kind_of_seller_line_adds_up_and_periods_chain(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    story = seller_story(engine, marketplace, uid)
    s = story.seller_id
    first = seller_statement(engine, marketplace, s, story.t0, story.t1)
    second = seller_statement(engine, marketplace, s, story.t1, story.t2)
    whole = seller_statement(engine, marketplace, s, story.t0, story.t2)
    for statement in (first, second, whole):
        assert_adds_up(statement)

    assert first.opening == 0
    assert sorted((line.kind, line.reference, line.amount) for line in first.lines) == sorted(
        [
            (K.EARNING, f"o1-{uid}", 9_000),
            (K.EARNING, f"o2-{uid}", 4_500),
            (K.EARNING, f"o3/{uid}", 2_000),
            (K.REFUND, f"r1-{uid}", -1_800),
            (K.CHARGEBACK, f"d1-{uid}", -1_500),
            # Written after t1, posted, effective in the first period: a correction lands there.
            (K.ADJUSTMENT, f"fix-{uid}", 125),
        ]
    )
    [fix] = [line for line in first.lines if line.kind is K.ADJUSTMENT]
    assert fix.at == story.backdated_at
    assert first.closing == 12_325
    # Held back at the first close: the two reserves not yet released (o1's was released).
    assert sorted((h.kind, h.reference, h.amount) for h in first.held_at_close) == [
        (K.RESERVE, f"o2-{uid}", -450),
        (K.RESERVE, f"o3/{uid}", -200),
    ]

    assert second.opening == first.closing
    assert [(line.kind, line.amount) for line in second.lines if line.kind is not K.ADJUSTMENT] == [
        (K.PAYOUT, -3_000),
        (K.PAYOUT, -1_000),
        (K.PAYOUT_RETURNED, 1_000),
    ]
    assert [line.reference for line in second.lines][:3] == [f"p1-{uid}", f"p2-{uid}", f"p2-{uid}"]
    [goodwill] = [line for line in second.lines if line.kind is K.ADJUSTMENT]
    assert goodwill.amount == 250 and goodwill.reference == str(goodwill.ledger_transaction_id)
    assert second.closing == 9_575
    assert sorted((h.kind, h.reference, h.amount) for h in second.held_at_close) == [
        (K.CHARGEBACK, f"d3-{uid}", -300),
        (K.PAYOUT, f"p4-{uid}", -400),
        (K.RESERVE, f"o2-{uid}", -450),
        (K.RESERVE, f"o3/{uid}", -200),
    ]

    assert whole.opening == 0 and whole.closing == second.closing
    assert whole.lines == first.lines + second.lines
    # The statement's rule and the ledger's running totals agree once everything is in the past.
    with engine.connect() as conn:
        assert marketplace.seller_balances(conn, s).posted == whole.closing


def test_a_closed_period_asked_twice_is_the_same_document(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    payouts = Payouts(marketplace)
    story = seller_story(engine, marketplace, uid)
    s = story.seller_id
    before = seller_statement(engine, marketplace, s, story.t0, story.t1)

    # New writes after the period: the earning booked in the period posts now, an earning booked
    # now posts too, and a payout is paid.
    with engine.begin() as conn:
        marketplace.book_earning(conn, seller_id=s, order_id=f"late-{uid}", amount=3_000)
    with engine.begin() as conn:
        marketplace.post_earning(conn, s, f"o4-{uid}")
        marketplace.post_earning(conn, s, f"late-{uid}")
    paid_payout(engine, payouts, s, f"p9-{uid}", 700)

    after = seller_statement(engine, marketplace, s, story.t0, story.t1)
    assert after.digest == before.digest
    assert (after.opening, after.lines, after.closing) == (
        before.opening,
        before.lines,
        before.closing,
    )
    assert after.held_at_close == before.held_at_close
    assert after.generated_at > before.generated_at
    # The writes happened: they are lines of the period they posted in.
    since = seller_statement(engine, marketplace, s, story.t1, utc_now())
    assert {(x.kind, x.reference) for x in since.lines} >= {
        (K.EARNING, f"o4-{uid}"),
        (K.EARNING, f"late-{uid}"),
        (K.PAYOUT, f"p9-{uid}"),
    }


def test_a_pending_earning_counts_when_it_posts_not_at_its_effective_time(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    """The design point: booked (pending) in one period, posted in the next. Ordered by
    effective_at it would appear in the first period only once it posted, changing a closed
    statement; by statement time it is a line of the period it posted in."""
    s = f"s-{uid}"
    t0 = utc_now()
    with engine.begin() as conn:
        marketplace.create_seller(conn, seller_id=s, name="Shop", currency="USD")
        marketplace.book_earning(conn, seller_id=s, order_id=f"o-{uid}", amount=1_000)
    t1 = utc_now()
    asked_before = seller_statement(engine, marketplace, s, t0, t1)
    with engine.begin() as conn:
        marketplace.post_earning(conn, s, f"o-{uid}")
    t2 = utc_now()
    asked_after = seller_statement(engine, marketplace, s, t0, t1)
    assert asked_before.lines == asked_after.lines == ()
    assert asked_before.digest == asked_after.digest
    [line] = seller_statement(engine, marketplace, s, t1, t2).lines
    assert (line.kind, line.amount, line.balance) == (K.EARNING, 1_000, 1_000)
    assert line.effective_at < t1 <= line.at


def test_too_many_lines_and_an_unknown_seller(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    story = seller_story(engine, marketplace, uid)
    with engine.connect() as conn, pytest.raises(StatementTooLarge) as error:
        Statements(marketplace).seller_statement(
            conn, story.seller_id, window(story.t0, story.t2), max_lines=3
        )
    assert error.value.code == "statement_too_large"
    with engine.connect() as conn, pytest.raises(SellerNotFound):
        Statements(marketplace).seller_statement(
            conn, f"nobody-{uid}", window(story.t0, story.t0 + timedelta(days=1))
        )


def test_earnings_posted_by_the_hold_settlement_count_when_they_post(
    engine: Engine, marketplace: Marketplace, uid: str
) -> None:
    """The hold workflow posts due earnings set-based, with the commit
    (``marketplace.holds``): those count at their posting too."""
    s = f"s-{uid}"
    t0 = utc_now()
    with engine.begin() as conn:
        marketplace.create_seller(conn, seller_id=s, name="Shop", currency="USD")
        for n in range(3):
            marketplace.book_earning(
                conn,
                seller_id=s,
                order_id=f"o{n}-{uid}",
                amount=1_000 + n,
                booked_at=t0 - timedelta(days=30),  # its hold ended long ago
            )
    t1 = utc_now()
    with engine.begin() as conn:
        settled = marketplace.holds.settle_due(conn, s, at=utc_now(), window=timedelta(0))
    assert settled.posted == 3
    t2 = utc_now()
    assert seller_statement(engine, marketplace, s, t0, t1).lines == ()
    second = seller_statement(engine, marketplace, s, t1, t2)
    assert sorted(line.amount for line in second.lines) == [1_000, 1_001, 1_002]
    assert {line.kind for line in second.lines} == {K.EARNING}
    assert second.closing == 3_003
