"""What happened (the facts the API accepted) and the independent model: plain integers that
say what every balance, status and transaction must be."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from bench.month.plan import (
    OUTCOME_BY_LAST4,
    PLATFORM_ROLES,
    DisputePlan,
    Json,
    OrderPlan,
    Plan,
    RefundPlan,
    SellerPlan,
)

# ---------------------------------------------------------------------------- what happened


@dataclass
class OrderFact:
    plan: OrderPlan
    requested_at: datetime
    """Wall clock when the request was sent: the earning cannot have been booked before."""


@dataclass
class RefundFact:
    plan: RefundPlan
    kind: str
    """during_hold | after_posting, as the API answered."""
    fee_amount: int
    seller_amount: int


@dataclass
class Facts:
    """What the API accepted, in the order it answered."""

    orders: dict[str, OrderFact] = field(default_factory=dict)
    refunds: dict[str, list[RefundFact]] = field(default_factory=lambda: defaultdict(list))
    disputes: dict[str, DisputePlan] = field(default_factory=dict)
    resolved: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------- the model


def fee_refunded(fee: int, refunded: int, amount: int) -> int:
    """The fee refunded in total once ``refunded`` of ``amount`` is: rounded up, so that rounding
    falls on the platform and the seller never loses more than its share."""
    return -(-fee * refunded // amount)


@dataclass
class Totals:
    """An account's running totals: sums of its pending and posted entries."""

    pending_debits: int = 0
    pending_credits: int = 0
    posted_debits: int = 0
    posted_credits: int = 0

    def views(self, normal: str) -> dict[str, tuple[int, int, int]]:
        """DESIGN.md's three balance views: (credits, debits, amount) each."""
        pd, pc = self.pending_debits, self.pending_credits
        sd, sc = self.posted_debits, self.posted_credits
        if normal == "credit":
            return {
                "pending": (pc + sc, pd + sd, (pc + sc) - (pd + sd)),
                "posted": (sc, sd, sc - sd),
                "available": (sc, pd + sd, sc - (pd + sd)),
            }
        return {
            "pending": (pc + sc, pd + sd, (pd + sd) - (pc + sc)),
            "posted": (sc, sd, sd - sc),
            "available": (pc + sc, sd, sd - (pc + sc)),
        }

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.pending_debits, self.pending_credits, self.posted_debits, self.posted_credits)


@dataclass
class SellerState:
    totals: Totals = field(default_factory=Totals)
    on_hold: int = 0
    in_reserve: int = 0
    in_dispute: int = 0

    @property
    def available(self) -> int:
        return self.totals.views("credit")["available"][2]


@dataclass(frozen=True)
class EarningState:
    status: str
    net: int
    reserve_amount: int | None
    """None: not checked (a cancelled earning keeps the reserve it was last booked with)."""
    reserve_held: bool


@dataclass
class Expected:
    sellers: dict[str, SellerState]
    platform: dict[str, Totals]
    earnings: dict[str, EarningState] = field(default_factory=dict)
    disputes: dict[str, str] = field(default_factory=dict)
    payouts: dict[str, str] = field(default_factory=dict)
    """Payout id -> the status its destination must have led to."""
    rebooks: Counter[str] = field(default_factory=Counter)
    """Order -> earnings booked again after a partial refund during the hold."""
    after_posting_refunds: set[str] = field(default_factory=set)
    reserves: set[str] = field(default_factory=set)
    on_hold_count: int = 0
    reserves_held_count: int = 0
    open_disputes_count: int = 0
    problems: list[str] = field(default_factory=list)


def model(plan: Plan, facts: Facts, payouts: list[Json]) -> Expected:
    """What the ledger must hold once everything that can end has ended."""
    exp = Expected(
        sellers={s: SellerState() for s in plan.sellers},
        platform={role: Totals() for role in PLATFORM_ROLES},
    )
    clearing, fees = exp.platform["clearing"], exp.platform["fees_revenue"]
    transit, reserve = exp.platform["payouts_in_transit"], exp.platform["rolling_reserve"]
    chargebacks = exp.platform["disputes"]
    for order_id, fact in facts.orders.items():
        o = fact.plan
        seller = plan.sellers[o.seller]
        acc = exp.sellers[o.seller]
        net = o.amount - o.fee
        refunded = during = 0
        after_posting: list[tuple[int, int]] = []
        for rf in facts.refunds.get(order_id, []):
            total = refunded + rf.plan.amount
            fee_share = fee_refunded(o.fee, total, o.amount) - fee_refunded(
                o.fee, refunded, o.amount
            )
            if (rf.fee_amount, rf.seller_amount) != (fee_share, rf.plan.amount - fee_share):
                exp.problems.append(
                    f"refund {rf.plan.id}: fee/seller share {rf.fee_amount}/{rf.seller_amount}, "
                    f"model {fee_share}/{rf.plan.amount - fee_share}"
                )
            if rf.kind == "during_hold":
                if after_posting:
                    exp.problems.append(f"refund {rf.plan.id}: during the hold after posting")
                during += rf.plan.amount
                if total < o.amount:
                    exp.rebooks[order_id] += 1
            elif rf.kind == "after_posting":
                after_posting.append((rf.plan.amount, fee_share))
                exp.after_posting_refunds.add(rf.plan.id)
            else:
                exp.problems.append(f"refund {rf.plan.id}: unknown kind {rf.kind!r}")
            refunded = total
        gross = o.amount - during
        fee_left = o.fee - fee_refunded(o.fee, during, o.amount)
        net_left = gross - fee_left
        if gross == 0:
            exp.earnings[order_id] = EarningState("cancelled", net, None, False)
            continue
        reserve_amount = net_left * seller.reserve_bp // 10_000
        if seller.long_hold:
            if after_posting:
                exp.problems.append(f"order {order_id}: refunded after posting, hold never ended")
            acc.totals.pending_credits += net_left
            acc.on_hold += net_left
            clearing.pending_debits += gross
            fees.pending_credits += fee_left
            exp.earnings[order_id] = EarningState("on_hold", net, reserve_amount, False)
            exp.on_hold_count += 1
            continue
        acc.totals.posted_credits += net_left
        clearing.posted_debits += gross
        fees.posted_credits += fee_left
        for amount, fee_share in after_posting:
            acc.totals.posted_debits += amount - fee_share
            fees.posted_debits += fee_share
            clearing.posted_credits += amount
        held = reserve_amount > 0 and seller.long_reserve
        if reserve_amount > 0:
            exp.reserves.add(order_id)
        if held:
            acc.totals.pending_debits += reserve_amount
            reserve.pending_credits += reserve_amount
            acc.in_reserve += reserve_amount
            exp.reserves_held_count += 1
        status = "refunded" if refunded == o.amount else "posted"
        exp.earnings[order_id] = EarningState(status, net, reserve_amount, held)

    for dispute_id, d in facts.disputes.items():
        if d.fate in ("won", "lost"):
            status = facts.resolved.get(dispute_id, "open")
        else:
            status = "lost" if d.fate == "expire" else "open"
        exp.disputes[dispute_id] = status
        acc = exp.sellers[d.seller]
        if status == "open":
            acc.totals.pending_debits += d.amount
            chargebacks.pending_credits += d.amount
            acc.in_dispute += d.amount
            exp.open_disputes_count += 1
        elif status == "lost":
            acc.totals.posted_debits += d.amount
            chargebacks.posted_credits += d.amount

    for p in payouts:
        outcome = OUTCOME_BY_LAST4.get(p["account_number_masked"][-4:], "paid")
        exp.payouts[p["id"]] = outcome
        acc = exp.sellers[p["seller_id"]]
        amount = int(p["amount"])
        if outcome in ("paid", "returned"):
            acc.totals.posted_debits += amount
            transit.posted_credits += amount
        if outcome == "returned":
            acc.totals.posted_credits += amount
            transit.posted_debits += amount
    return exp


def run_expectation(seller: SellerPlan, available: int) -> tuple[str, int | None, str | None]:
    """What a payout run decides for a seller with ``available`` (the README's rule):
    (outcome, amount, reason)."""
    if not seller.has_account:
        return "skipped", None, "no_payout_account"
    if available < 0:
        return "skipped", None, "negative_balance"
    if available == 0:
        return "skipped", None, "nothing_available"
    if available < seller.minimum:
        return "skipped", None, "below_minimum"
    return "started", available, None
