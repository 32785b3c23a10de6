"""What must hold after any fault, checked with plain SQL on the platform's database and against
the bank: the books balance, each accepted request moved money exactly once, and each seller's
balances are what the accepted requests imply.

``Accepted`` is the test's own record of what the API accepted (a 2xx). The expected balances are
computed from it alone, with the booking rules of ``marketplace.booking`` (an earning credits the
seller ``amount - fee``: pending while on hold, posted after) and ``marketplace.payouts`` (a payout
debits the seller its amount, and an instant one its fee too: pending while in flight, posted once
paid).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from marketplace import Marketplace
from payment_rail import SimulatedBankAdmin
from tests.helpers import ENTRY_SUMS_SQL, drifted_accounts


@dataclass(frozen=True)
class AcceptedEarning:
    seller_id: str
    order_id: str
    amount: int
    fee: int

    @property
    def net(self) -> int:
        return self.amount - self.fee


@dataclass(frozen=True)
class AcceptedPayout:
    seller_id: str
    payout_id: str
    amount: int
    fee: int = 0  # an instant payout's, debited on top of the amount


@dataclass
class Accepted:
    """Every request the API accepted (answered 2xx) in one scenario, by the test's own count."""

    earnings: dict[str, AcceptedEarning] = field(default_factory=dict)
    payouts: dict[str, AcceptedPayout] = field(default_factory=dict)

    def earning(self, seller_id: str, order_id: str, amount: int, fee: int) -> None:
        self.earnings[order_id] = AcceptedEarning(seller_id, order_id, amount, fee)

    def payout(self, seller_id: str, payout_id: str, amount: int, fee: int = 0) -> None:
        payout = AcceptedPayout(seller_id, payout_id, amount, fee)
        previous = self.payouts.setdefault(payout_id, payout)
        assert previous == payout, f"payout {payout_id} answered for two different requests"

    def sellers(self) -> set[str]:
        return {e.seller_id for e in self.earnings.values()} | {
            p.seller_id for p in self.payouts.values()
        }


@dataclass(frozen=True)
class Views:
    """A credit-normal account's three balances (DESIGN.md, "Ledger model")."""

    pending: int
    posted: int
    available: int

    @classmethod
    def of(
        cls, *, pending_credits: int, posted_credits: int, pending_debits: int, posted_debits: int
    ) -> Views:
        return cls(
            pending=(pending_credits + posted_credits) - (pending_debits + posted_debits),
            posted=posted_credits - posted_debits,
            available=posted_credits - (pending_debits + posted_debits),
        )


def expected_views(accepted: Accepted, seller_id: str, *, on_hold: AbstractSet[str]) -> Views:
    """The seller's balances once every accepted payout is paid: earnings in ``on_hold`` (order
    ids) are still pending credits, the others posted; each payout a posted debit of its amount
    and fee."""
    earnings = [e for e in accepted.earnings.values() if e.seller_id == seller_id]
    payouts = [p for p in accepted.payouts.values() if p.seller_id == seller_id]
    return Views.of(
        pending_credits=sum(e.net for e in earnings if e.order_id in on_hold),
        posted_credits=sum(e.net for e in earnings if e.order_id not in on_hold),
        pending_debits=0,
        posted_debits=sum(p.amount + p.fee for p in payouts),
    )


def assert_books_balance(db: Engine) -> None:
    """Every ledger sums to zero (debits = credits per ledger, for pending, posted and archived
    entries alike), and every account's running totals equal the sums of its entries."""
    with db.connect() as conn:
        unbalanced = conn.execute(
            text(
                """
                SELECT t.ledger_id, t.status,
                       coalesce(sum(e.amount) FILTER (WHERE e.direction = 'debit'), 0) AS debits,
                       coalesce(sum(e.amount) FILTER (WHERE e.direction = 'credit'), 0) AS credits
                FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                GROUP BY t.ledger_id, t.status
                HAVING coalesce(sum(e.amount) FILTER (WHERE e.direction = 'debit'), 0)
                    <> coalesce(sum(e.amount) FILTER (WHERE e.direction = 'credit'), 0)
                """
            )
        ).all()
        drifted = drifted_accounts(conn)
    assert unbalanced == [], f"ledgers whose debits and credits differ: {unbalanced}"
    assert drifted == [], f"accounts whose running totals differ from their entries: {drifted}"


def assert_earnings_booked_once(db: Engine, accepted: Accepted) -> None:
    """Each accepted earning is one earnings row with its terms and one ledger transaction
    ``earning:<seller>/<order>`` (seller credited net, fees credited fee, clearing debited
    amount); the sellers have no other earning."""
    sellers = sorted({e.seller_id for e in accepted.earnings.values()})
    with db.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT e.order_id, e.seller_id, e.amount, e.fee, e.net,
                       (SELECT count(*) FROM ledger_transactions t
                        WHERE t.external_id = 'earning:' || e.seller_id || '/' || e.order_id)
                           AS transactions,
                       (SELECT count(*) FROM ledger_entries le
                        WHERE le.transaction_id = e.ledger_transaction_id
                          AND le.account_id = s.ledger_account_id
                          AND le.direction = 'credit' AND le.amount = e.net) AS seller_credits
                FROM earnings e JOIN sellers s ON s.id = e.seller_id
                WHERE e.seller_id = ANY(:sellers)
                """
            ),
            {"sellers": sellers},
        ).all()
    booked = {r.order_id: r for r in rows}
    assert set(booked) == set(accepted.earnings), (
        f"booked but not accepted: {set(booked) - set(accepted.earnings)}; "
        f"accepted but not booked: {set(accepted.earnings) - set(booked)}"
    )
    for order_id, earning in accepted.earnings.items():
        row = booked[order_id]
        assert (row.seller_id, row.amount, row.fee, row.net) == (
            earning.seller_id,
            earning.amount,
            earning.fee,
            earning.net,
        ), row
        assert row.transactions == 1, f"order {order_id}: {row.transactions} ledger transactions"
        assert row.seller_credits == 1 or earning.net == 0, row


def assert_payouts_paid_once(db: Engine, bank: SimulatedBankAdmin, accepted: Accepted) -> None:
    """Each accepted payout is one payouts row, paid, with one posted ledger transaction
    ``payout:<id>`` of its amount and fee, and the bank paid it exactly once; the sellers have no
    other payout."""
    sellers = sorted({p.seller_id for p in accepted.payouts.values()})
    with db.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT p.id, p.seller_id, p.amount, p.fee, p.status,
                       (SELECT count(*) FROM ledger_transactions t
                        WHERE t.external_id = 'payout:' || p.id) AS transactions,
                       (SELECT count(*) FROM ledger_transactions t
                        WHERE t.external_id = 'payout:' || p.id
                          AND t.status = 'posted' AND t.total_amount = p.amount + p.fee)
                           AS posted
                FROM payouts p WHERE p.seller_id = ANY(:sellers)
                """
            ),
            {"sellers": sellers},
        ).all()
    made = {r.id: r for r in rows}
    assert set(made) == set(accepted.payouts), (
        f"made but not accepted: {set(made) - set(accepted.payouts)}; "
        f"accepted but not made: {set(accepted.payouts) - set(made)}"
    )
    for payout_id, payout in accepted.payouts.items():
        row = made[payout_id]
        assert (row.seller_id, row.amount, row.fee, row.status) == (
            payout.seller_id,
            payout.amount,
            payout.fee,
            "paid",
        )
        assert (row.transactions, row.posted) == (1, 1), row
        assert bank.paid_count(payout_id) == 1, f"the bank paid {payout_id} not exactly once"


def entry_views(db: Engine, seller_id: str) -> Views:
    """The seller's balances summed from its ledger entries (not the running totals)."""
    with db.connect() as conn:
        row = conn.execute(
            text(
                f"""
                SELECT {ENTRY_SUMS_SQL}
                FROM sellers s
                JOIN ledger_entries e ON e.account_id = s.ledger_account_id
                JOIN ledger_transactions t ON t.id = e.transaction_id
                WHERE s.id = :seller
                """
            ),
            {"seller": seller_id},
        ).one()
    return Views.of(
        pending_credits=row.pc, posted_credits=row.sc, pending_debits=row.pd, posted_debits=row.sd
    )


def assert_balances(
    db: Engine, accepted: Accepted, *, on_hold: AbstractSet[str] = frozenset()
) -> None:
    """Each seller's balances, summed from its entries and as the marketplace reports them,
    equal what the accepted requests imply."""
    market = Marketplace()
    for seller_id in sorted(accepted.sellers()):
        expected = expected_views(accepted, seller_id, on_hold=on_hold)
        assert entry_views(db, seller_id) == expected, seller_id
        with db.connect() as conn:
            reported = market.seller_balances(conn, seller_id)
        assert Views(reported.pending, reported.posted, reported.available) == expected, seller_id
