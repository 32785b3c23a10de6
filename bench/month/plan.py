"""The month's shape and its plan: sellers, orders, refunds and disputes drawn from the seed,
before anything is sent."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from payment_rail import ACCOUNT_CLOSED, ACCOUNT_PAID, ACCOUNT_RETURNED

# ---------------------------------------------------------------------------- the month's shape

REFUND_RATE = 0.01
CHARGEBACK_RATE = 0.003
FAILED_PAYOUT_RATE = 0.02
RETURNED_PAYOUT_RATE = 0.005
LONG_HOLD_SHARE = 0.02
LONG_HOLD_DAYS = 60
HOLD_DAYS = (1, 1, 2, 2, 2, 3)
RESERVE_SHARE = 0.2
SHORT_RESERVE_DAYS = 1
LONG_RESERVE_DAYS = 90
NO_ACCOUNT_SHARE = 0.01
MINIMUM_SHARE = 0.15
MINIMUM_AMOUNT = 10_000
FEE_BP = (500, 800, 1000, 1200)
DISPUTE_FATES = ("won", "lost", "expire", "open")
DISPUTE_FATE_WEIGHTS = (40, 35, 15, 10)
EXPIRE_DAYS = 2
SETTLE_DAYS = 0.2
RETURN_DAYS = 0.5
RETURN_WINDOW_DAYS = 2
MAX_TAIL_DAYS = 20
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

PLATFORM_ROLES = ("clearing", "fees_revenue", "payouts_in_transit", "rolling_reserve", "disputes")
OUTCOME_BY_LAST4 = {
    ACCOUNT_PAID[-4:]: "paid",
    ACCOUNT_CLOSED[-4:]: "failed",
    ACCOUNT_RETURNED[-4:]: "returned",
}
BAD_ACCOUNTS = {"fail": ACCOUNT_CLOSED, "return": ACCOUNT_RETURNED}
ATTEMPTS = 10
SETUP = "setup (sellers, accounts, schedules)"
OBSERVE_TIMEOUT = 120.0
SKIP_CHECK = 3.0  # seconds between looks at the schedule while a triggered run does not show
SETTLING = ("payouts_in_flight", "returns_due", "runs_deciding", "payouts_reserving")
SCHEDULE_CONCURRENCY = 8

Json = dict[str, Any]


@dataclass(frozen=True)
class SellerPlan:
    id: str
    weight: float
    hold_days: int
    fee_bp: int
    reserve_bp: int
    """0: no rolling reserve."""
    reserve_days: int
    interval: str
    """daily | weekly"""
    weekday: int
    """weekly: runs at the end of every simulated day d with d % 7 == weekday."""
    minimum: int
    has_account: bool

    @property
    def long_hold(self) -> bool:
        return self.hold_days >= LONG_HOLD_DAYS

    @property
    def long_reserve(self) -> bool:
        return self.reserve_days >= LONG_RESERVE_DAYS

    def due(self, day: int) -> bool:
        return self.interval == "daily" or day % 7 == self.weekday


@dataclass(frozen=True)
class OrderPlan:
    id: str
    seller: str
    at: float
    """Simulated days from the start."""
    amount: int
    fee: int


@dataclass(frozen=True)
class RefundPlan:
    id: str
    order: str
    seller: str
    at: float
    amount: int
    previous: str | None
    """The order's earlier refund, which must be done first."""


@dataclass(frozen=True)
class DisputePlan:
    id: str
    order: str
    seller: str
    at: float
    amount: int
    fate: str
    """won | lost (resolved through the API) | expire (lost at its deadline) | open"""
    resolve_at: float | None


@dataclass
class Plan:
    run: str
    days: int
    sellers: dict[str, SellerPlan]
    orders: list[OrderPlan]
    refunds: list[RefundPlan]
    disputes: list[DisputePlan]


def make_plan(seed: int, run: str, sellers: int, orders: int, days: int) -> Plan:
    """Everything the month will do, from the seed alone."""
    rng = random.Random(seed)
    plans: dict[str, SellerPlan] = {}
    for i in range(sellers):
        reserve = rng.random() < RESERVE_SHARE
        seller = SellerPlan(
            id=f"{run}-s{i:04d}",
            weight=rng.lognormvariate(0, 1),
            hold_days=LONG_HOLD_DAYS if rng.random() < LONG_HOLD_SHARE else rng.choice(HOLD_DAYS),
            fee_bp=rng.choice(FEE_BP),
            reserve_bp=rng.choice((500, 1000)) if reserve else 0,
            reserve_days=rng.choice((SHORT_RESERVE_DAYS, LONG_RESERVE_DAYS)) if reserve else 0,
            interval="daily" if rng.random() < 0.3 else "weekly",
            weekday=rng.randrange(7),
            minimum=MINIMUM_AMOUNT if rng.random() < MINIMUM_SHARE else 0,
            has_account=rng.random() >= NO_ACCOUNT_SHARE,
        )
        plans[seller.id] = seller
    seller_list = list(plans.values())
    chosen = rng.choices(seller_list, weights=[s.weight for s in seller_list], k=orders)
    times = sorted(rng.uniform(0, days) for _ in range(orders))
    order_list: list[OrderPlan] = []
    for n, (seller, at) in enumerate(zip(chosen, times, strict=True)):
        amount = min(1_000_000, max(200, int(rng.lognormvariate(math.log(4000), 0.9))))
        order_list.append(
            OrderPlan(f"{run}-o{n:06d}", seller.id, at, amount, amount * seller.fee_bp // 10_000)
        )

    def clamp(at: float, after: float) -> float:
        """Within the month, and after ``after``."""
        return max(after + 1e-6, min(at, days - 1e-3))

    picked = rng.sample(
        range(orders), k=min(orders, round(orders * (REFUND_RATE + CHARGEBACK_RATE)))
    )
    refunded = picked[: round(orders * REFUND_RATE)]
    charged_back = picked[round(orders * REFUND_RATE) :]
    refunds: list[RefundPlan] = []
    for n in refunded:
        o = order_list[n]
        first_at = clamp(o.at + rng.uniform(0.05, 5), o.at)
        mode = rng.random()
        if mode < 0.55:
            refunds.append(RefundPlan(f"{o.id}-rf1", o.id, o.seller, first_at, o.amount, None))
            continue
        first = rng.randint(1, o.amount - 1)
        refunds.append(RefundPlan(f"{o.id}-rf1", o.id, o.seller, first_at, first, None))
        if mode >= 0.85:
            second_at = clamp(first_at + rng.uniform(0.1, 2), first_at)
            second = rng.randint(1, o.amount - first)
            refunds.append(
                RefundPlan(f"{o.id}-rf2", o.id, o.seller, second_at, second, f"{o.id}-rf1")
            )
    disputes: list[DisputePlan] = []
    for n in charged_back:
        o = order_list[n]
        at = clamp(o.at + rng.uniform(1, 8), o.at)
        fate = rng.choices(DISPUTE_FATES, weights=DISPUTE_FATE_WEIGHTS)[0]
        resolve_at = clamp(at + rng.uniform(1, 6), at) if fate in ("won", "lost") else None
        disputes.append(DisputePlan(f"{o.id}-cb", o.id, o.seller, at, o.amount, fate, resolve_at))
    return Plan(run, days, plans, order_list, refunds, disputes)


def bad_run(seed: int, seller_id: str, day: int) -> str | None:
    """Whether the seller's payout run at the end of ``day`` goes to a failing ("fail") or
    returning ("return") account: a function of the seed, the seller and the day only."""
    draw = random.Random(f"{seed}:{seller_id}:{day}").random()
    if draw < FAILED_PAYOUT_RATE:
        return "fail"
    if draw < FAILED_PAYOUT_RATE + RETURNED_PAYOUT_RATE:
        return "return"
    return None
