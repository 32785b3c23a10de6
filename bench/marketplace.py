"""A month of a marketplace through the API, on the embedded stack, checked to the cent against an
independent model of the same events.

The stack is the one ``make run`` starts (``server.stack.Stack``: embedded PostgreSQL, Temporal dev
server, worker and API as child processes, free ports, a temporary folder), except that the
simulated bank runs as its own HTTP service (``python -m payment_rail``) with the worker pointed at
it (``PAYOUTS_RAIL_URL``) and its signed webhooks going to the stack's ``/v1/rail/webhooks``: the
bench then asks the bank itself (``/admin/payouts``) whether any payout left it twice.

**Time.** A simulated day lasts ``--day-seconds`` real seconds (default: what spreads ``--orders``
over ``--days`` at ``--rate`` orders per second, 40 by default: about 42 s a day at full size, a
21-minute month; 10 s, the least, at ``--orders 2000``). Every duration the
platform keeps is given in those seconds: hold periods and rolling-reserve periods as ISO 8601
durations on the sellers (``PT84S`` for a 2-day hold in days of 42 s), dispute deadlines, the
bank's settle and return delays, the payout return window. Orders are spread uniformly over the
month and sent when their time comes (as fast as ``--concurrency`` allows when the stack falls
behind).

**Payouts.** Every seller has a real Temporal payout schedule (``PUT .../payout_schedule``: daily,
or weekly on one weekday; some with a minimum amount), put at a time of day 12 hours from the
start so that it does not fire during a run of less than 12 hours: a Temporal schedule cannot fire
once per compressed day. The simulated days' runs are the API's trigger endpoint instead
(``POST .../payout_schedule/trigger``), at the end of every simulated day for daily sellers and of
every seventh day for weekly ones; each trigger is a run of the schedule (decision, recorded run,
payout workflow, bank, webhook).

**Failed and returned payouts** are chosen per (seller, day) run from the seed (2% fail, 0.5%
return): for such a run the bench first points the seller's payout account at the bank's test
account ``000111111113`` (account closed: the payout fails) or ``000111111116`` (paid, then
returned), triggers the run, waits until the run has reserved its payout (the payout keeps a copy
of its destination), and puts the seller's normal account (``000123456789``) back. The seller's
run before such a run is watched the same way (without the switch): a payout still reserving when
the account changes would go there too. The rates are of runs; the report gives the payouts'.
After a return the seller's schedule must be paused by the platform; the bench checks that and,
as an operator would, resumes it.

**The month**: ``--sellers`` sellers (1% without a payout account, 2% with a 60-day hold so that
their earnings are still on hold at the end, 20% with a 5% or 10% rolling reserve held 1 day or
90 days), ``--orders`` orders (log-normal amounts around $40, a fee of 5-12%), 1% of them refunded
(in full, in part, or in two parts; during the hold or after posting, whichever comes first),
0.3% charged back (won or lost by ``resolve``, lost by passing the deadline, or still open at the
end).

**The end**: after the last day the simulated days go on with payouts but no new events until every
hold, reserve and dispute that can end has ended; then no more triggers until nothing moves: no
payout run deciding and no payout reserving (asked of Temporal), none at the bank, every payout to
the returning account returned. Checkpoint A compares everything with the model. Then a final
payout run for every seller, whose outcome the model predicts exactly (the seller's whole available
balance, or the reason for skipping), and checkpoint B compares everything again, in full.

**The model** is plain integers. From what the bench sent and the API accepted (orders, refunds,
disputes and their resolutions) and the payouts the API lists, with the outcome each must have had
(by the account it was made to), it computes every seller's and every platform account's running
totals (pending and posted debits and credits), hence their pending, posted and available
balances, and the sellers' on hold, in reserve and in dispute; every earning's status and reserve,
every dispute's status, every payout's status, and which ledger transactions must exist. The fee's
share of each refund is computed from the rule (``ceil(fee * refunded / amount)`` refunded in
total) and compared with what the API answered. Checked against the model: the API's seller
balances and platform accounts, the ledger tables (entries summed per account and status, and the
accounts' running totals), the earnings, disputes and payouts the API lists; besides: the ledger
sums to zero, every order is booked exactly once (and every refund, dispute, reserve, payout and
return has exactly one transaction), every payout is at the bank with the same amount and outcome
and was paid there at most once, and no seller was paid more than it had earned by then. Any
mismatch, 5xx or unexpected answer makes the exit status 1.

The report: wall times, API requests per second (overall and per kind of request), p50 and p99
latency per kind, the events by kind, and the result of each check. ``--keep`` keeps the stack's
folder (logs, PostgreSQL, Temporal's and the bank's SQLite), as a failed run always does.

Usage: python bench/marketplace.py [--sellers 1000] [--orders 50000] [--days 30]
       [--day-seconds S | --rate 40] [--concurrency 32] [--seed 1] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

# The repository first: this file's name would otherwise shadow the ``marketplace`` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from payment_rail import ACCOUNT_CLOSED, ACCOUNT_PAID, ACCOUNT_RETURNED, TEST_ROUTING_NUMBER
from payment_rail.client import SimulatedBankAdmin
from server.database import create_db_engine

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


# ---------------------------------------------------------------------------- the API


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Api:
    """The platform's API with the bench's bookkeeping: every request's latency and status by
    phase and kind; 502/503 and connection errors retried with back-off (every request the bench
    sends is keyed or harmless to repeat); anything else unexpected recorded as an error."""

    def __init__(self, base_url: str, key: str, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            limits=limits,
            timeout=120,
        )
        self.slots = asyncio.Semaphore(concurrency)
        self.phase = "setup"
        self.latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.statuses: Counter[tuple[str, str, int]] = Counter()
        self.retries: Counter[str] = Counter()
        self.errors: list[str] = []

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: dict[str, str | int] | None = None,
        expect: tuple[int, ...] = (200, 201),
        allow: tuple[int, ...] = (),
    ) -> httpx.Response | None:
        """The response if its status is in ``expect`` or ``allow``; else None (recorded)."""
        last = ""
        for attempt in range(ATTEMPTS):
            response: httpx.Response | None = None
            async with self.slots:
                started = time.perf_counter()
                try:
                    response = await self.http.request(method, path, json=json, params=params)
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - started
            status = response.status_code if response is not None else 0
            self.latencies[(self.phase, kind)].append(elapsed)
            self.statuses[(self.phase, kind, status)] += 1
            if response is not None and (status in expect or status in allow):
                return response
            if response is None or status in (502, 503):
                self.retries[kind] += 1
                if response is not None:
                    last = f"{status} {response.text[:200]}"
                retry_after = response.headers.get("Retry-After") if response is not None else None
                delay = float(retry_after) if retry_after else min(10.0, 0.5 * 2**attempt)
                await asyncio.sleep(delay)
                continue
            self.errors.append(f"{kind}: {method} {path} -> {status} {response.text[:300]}")
            return None
        self.errors.append(f"{kind}: {method} {path}: gave up after {ATTEMPTS} attempts: {last}")
        return None

    async def json(self, kind: str, path: str, **params: str | int) -> Json | None:
        response = await self.call(kind, "GET", path, params=params or None)
        return None if response is None else dict(response.json())

    async def list_all(self, kind: str, path: str, **params: str | int) -> list[Json] | None:
        """Every item of a paged list (100 a page), or None if a page failed."""
        items: list[Json] = []
        query: dict[str, str | int] = {"per_page": 100, **params}
        while True:
            page = await self.json(kind, path, **query)
            if page is None:
                return None
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["after_cursor"] = page["next_cursor"]

    def requests(self, phase: str | None = None) -> int:
        return sum(n for (p, _, _), n in self.statuses.items() if phase in (None, p))


# ---------------------------------------------------------------------------- the simulation


class Simulation:
    def __init__(
        self,
        plan: Plan,
        api: Api,
        engine: Engine,
        temporal: Client,
        *,
        seed: int,
        day_seconds: float,
        concurrency: int,
    ) -> None:
        self.plan = plan
        self.api = api
        self.engine = engine
        self.temporal = temporal
        self.seed = seed
        self.day_seconds = day_seconds
        self.facts = Facts()
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.ledger_accounts: dict[str, str] = {}
        self.ledger_id = ""
        self.order_done = {o.id: asyncio.Event() for o in plan.orders}
        self.refund_done = {r.id: asyncio.Event() for r in plan.refunds}
        self.dispute_opened = {d.id: asyncio.Event() for d in plan.disputes}
        self.locks = {s: asyncio.Lock() for s in plan.sellers}
        self.returned_sellers: set[str] = set()
        self.reserved_nothing: set[str] = set()
        self.pending = asyncio.Semaphore(concurrency * 4)
        self.tasks: set[asyncio.Task[None]] = set()
        self.t0 = 0.0
        self.max_lag = 0.0

    # -- helpers

    def seconds(self, days: float) -> int:
        """Whole seconds (at least 1) of ``days`` simulated days."""
        return max(1, round(days * self.day_seconds))

    def lag(self, at: float) -> float:
        """Real seconds the bench is behind the simulated time ``at``."""
        return max(0.0, time.monotonic() - self.t0 - at * self.day_seconds)

    async def until(self, at: float) -> None:
        delay = self.t0 + at * self.day_seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self.max_lag = max(self.max_lag, -delay)

    async def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task; waits while too many are outstanding (backpressure)."""
        await self.pending.acquire()
        task = asyncio.create_task(coro)
        self.tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.discard(t)
            self.pending.release()
            if not t.cancelled() and t.exception() is not None:
                self.problems.append(f"bench task failed: {t.exception()!r}")

        task.add_done_callback(done)

    async def drain_tasks(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def for_all(
        self, items: list[str], call: Callable[[str], Awaitable[None]], limit: int = 0
    ) -> None:
        gate = asyncio.Semaphore(limit or len(items) or 1)

        async def one(item: str) -> None:
            async with gate:
                await call(item)

        await asyncio.gather(*(one(i) for i in items))

    # -- setup

    async def setup(self) -> None:
        now = datetime.now(UTC) + timedelta(hours=12)
        time_of_day = f"{now.hour:02d}:{now.minute:02d}"

        async def create(seller_id: str) -> None:
            s = self.plan.sellers[seller_id]
            body: Json = {
                "id": s.id,
                "name": f"Shop {s.id}",
                "currency": "USD",
                "hold_period": f"PT{self.seconds(s.hold_days)}S",
                "metadata": {"bench": "marketplace"},
            }
            if s.reserve_bp:
                body["rolling_reserve"] = {
                    "percent": f"{s.reserve_bp // 100}.{s.reserve_bp % 100:02d}",
                    "period": f"PT{self.seconds(s.reserve_days)}S",
                }
            response = await self.api.call("seller_create", "POST", "/v1/sellers", json=body)
            if response is None:
                raise SystemExit(f"could not create seller {s.id}: {self.api.errors[-1:]}")
            created = response.json()
            self.ledger_accounts[s.id] = created["ledger_account_id"]
            self.ledger_id = created["ledger_id"]
            if s.has_account:
                await self.set_account(s.id, ACCOUNT_PAID)

        async def schedule(seller_id: str) -> None:
            s = self.plan.sellers[seller_id]
            body: Json = {
                "interval": s.interval,
                "time_of_day": time_of_day,
                "time_zone": "UTC",
                "minimum_amount": s.minimum,
            }
            if s.interval == "weekly":
                body["weekly_anchor"] = WEEKDAYS[s.weekday]
            await self.api.call(
                "schedule_put", "PUT", f"/v1/sellers/{seller_id}/payout_schedule", json=body
            )

        ids = list(self.plan.sellers)
        await self.for_all(ids, create)
        await self.for_all(ids, schedule, SCHEDULE_CONCURRENCY)

    async def set_account(self, seller_id: str, account_number: str) -> None:
        await self.api.call(
            "payout_account_put",
            "PUT",
            f"/v1/sellers/{seller_id}/payout_account",
            json={
                "account_number": account_number,
                "routing_number": TEST_ROUTING_NUMBER,
                "holder_name": f"Holder of {seller_id}",
            },
        )

    # -- the month's events

    async def order(self, o: OrderPlan) -> None:
        try:
            requested_at = datetime.now(UTC)
            response = await self.api.call(
                "earning",
                "POST",
                f"/v1/sellers/{o.seller}/earnings",
                json={"order_id": o.id, "amount": o.amount, "fee": o.fee},
            )
            if response is None:
                return
            body = response.json()
            if (body["seller_id"], body["amount"], body["fee"], body["net"]) != (
                o.seller,
                o.amount,
                o.fee,
                o.amount - o.fee,
            ):
                self.problems.append(f"order {o.id}: the API answered {body}")
            self.facts.orders[o.id] = OrderFact(o, requested_at)
            self.counts["orders accepted"] += 1
        finally:
            self.order_done[o.id].set()

    async def refund(self, r: RefundPlan) -> None:
        try:
            await self.order_done[r.order].wait()
            if r.previous is not None:
                await self.refund_done[r.previous].wait()
            if r.order not in self.facts.orders:
                return
            response = await self.api.call(
                "refund",
                "POST",
                f"/v1/sellers/{r.seller}/earnings/{r.order}/refund",
                json={"refund_id": r.id, "amount": r.amount},
            )
            if response is None:
                return
            body = response.json()
            if body["amount"] != r.amount:
                self.problems.append(f"refund {r.id}: the API answered {body}")
            self.facts.refunds[r.order].append(
                RefundFact(r, body["kind"], body["fee_amount"], body["seller_amount"])
            )
            self.counts[f"refunds {body['kind'].replace('_', ' ')}"] += 1
        finally:
            self.refund_done[r.id].set()

    async def open_dispute(self, d: DisputePlan) -> None:
        try:
            await self.order_done[d.order].wait()
            if d.order not in self.facts.orders:
                return
            # Deadlines: the expiring ones a few simulated days on; the others far enough that
            # only the bench's resolve (or the end of the run) comes first.
            window = (
                timedelta(seconds=self.seconds(EXPIRE_DAYS))
                if d.fate == "expire"
                else timedelta(days=365)
            )
            response = await self.api.call(
                "dispute_open",
                "POST",
                "/v1/disputes",
                json={
                    "id": d.id,
                    "seller_id": d.seller,
                    "order_id": d.order,
                    "amount": d.amount,
                    "reason": "fraudulent",
                    "deadline": (datetime.now(UTC) + window).isoformat(),
                },
            )
            if response is None:
                return
            body = response.json()
            if (body["status"], body["amount"]) != ("open", d.amount):
                self.problems.append(f"dispute {d.id}: the API answered {body}")
            self.facts.disputes[d.id] = d
            fate = {"expire": "to be lost at the deadline", "open": "to stay open"}.get(
                d.fate, f"to be resolved {d.fate}"
            )
            self.counts[f"disputes opened ({fate})"] += 1
        finally:
            self.dispute_opened[d.id].set()

    async def resolve_dispute(self, d: DisputePlan) -> None:
        await self.dispute_opened[d.id].wait()
        if d.id not in self.facts.disputes:
            return
        response = await self.api.call(
            "dispute_resolve",
            "POST",
            f"/v1/disputes/{d.id}/resolve",
            json={"outcome": d.fate},
        )
        if response is None:
            return
        if response.json()["status"] != d.fate:
            self.problems.append(f"dispute {d.id}: resolved {d.fate}, the API answered {response}")
        self.facts.resolved[d.id] = d.fate

    async def payout_day(self, day: int) -> None:
        for s in self.plan.sellers.values():
            if s.due(day):
                await self.spawn(self.payout_run(s, day))

    async def payout_run(self, s: SellerPlan, day: int) -> None:
        async with self.locks[s.id]:
            self.counts[f"payout runs triggered ({s.interval})"] += 1
            bad = bad_run(self.seed, s.id, day) if s.has_account else None
            next_day = day + (1 if s.interval == "daily" else 7)
            if bad is None and (not s.has_account or bad_run(self.seed, s.id, next_day) is None):
                await self.api.call(
                    "payout_trigger",
                    "POST",
                    f"/v1/sellers/{s.id}/payout_schedule/trigger",
                    expect=(202,),
                )
                return
            # The run before one to a bad account is watched until its payout is reserved too:
            # a payout still reserving when the account changes would go there as well.
            if bad is not None:
                self.counts[f"payout runs to a {bad}ing account"] += 1
                await self.set_account(s.id, BAD_ACCOUNTS[bad])
            try:
                run = await self.observe_run(s.id)
                if run is not None and run["outcome"] == "started":
                    await self.wait_for_payout(run["payout_id"])
            finally:
                if bad is not None:
                    await self.set_account(s.id, ACCOUNT_PAID)

    async def schedule(self, seller_id: str) -> Json | None:
        return await self.api.json("schedule_get", f"/v1/sellers/{seller_id}/payout_schedule")

    def recorded_runs(self, seller_id: str) -> dict[str, Json]:
        """The seller's payout runs as recorded (read from the database: polling the schedule's
        description instead, a Temporal query per poll, loads the very server the runs wait on)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, outcome, payout_id, amount, reason FROM payout_runs"
                    " WHERE seller_id = :s"
                ),
                {"s": seller_id},
            ).mappings()
            return {row["id"]: dict(row) for row in rows}

    async def observe_run(self, seller_id: str) -> Json | None:
        """Trigger the seller's schedule and return the run it made (None: none seen). A trigger
        while the previous run still goes is skipped by the schedule (overlap policy; its count
        is in the schedule's description, asked every ``SKIP_CHECK`` seconds while no run shows):
        then it is triggered again, at growing intervals, for up to ``OBSERVE_TIMEOUT``."""
        give_up = time.monotonic() + OBSERVE_TIMEOUT
        pause = 1.0  # run ids have whole seconds
        while time.monotonic() < give_up:
            before = await self.schedule(seller_id)
            if before is None:
                return None
            known = set(await asyncio.to_thread(self.recorded_runs, seller_id))
            triggered = await self.api.call(
                "payout_trigger",
                "POST",
                f"/v1/sellers/{seller_id}/payout_schedule/trigger",
                expect=(202,),
            )
            if triggered is None:
                return None
            deadline = time.monotonic() + OBSERVE_TIMEOUT
            check = time.monotonic() + SKIP_CHECK
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                runs = await asyncio.to_thread(self.recorded_runs, seller_id)
                new = [run for run_id, run in runs.items() if run_id not in known]
                if new:
                    return new[0]
                if time.monotonic() < check:
                    continue
                check = time.monotonic() + SKIP_CHECK
                now = await self.schedule(seller_id)
                if now is not None and (
                    now["runs_skipped_overlapping"] > before["runs_skipped_overlapping"]
                ):
                    self.counts["observed triggers skipped (a run was still going)"] += 1
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 8.0)
                    break
            else:
                self.problems.append(
                    f"seller {seller_id}: no run {OBSERVE_TIMEOUT:.0f} s after a trigger"
                )
                return None
        self.problems.append(
            f"seller {seller_id}: every trigger skipped for {OBSERVE_TIMEOUT:.0f} s (a run going)"
        )
        return None

    async def wait_for_payout(self, payout_id: str) -> bool:
        """Until the payout's money is reserved (its row, with its destination, exists)."""
        deadline = time.monotonic() + OBSERVE_TIMEOUT
        while time.monotonic() < deadline:
            response = await self.api.call(
                "payout_get", "GET", f"/v1/payouts/{payout_id}", allow=(404,)
            )
            if response is not None and response.status_code == 200:
                return True
            await asyncio.sleep(0.3)
        return False  # e.g. the reservation failed (insufficient balance): no payout

    async def month(self, progress: Callable[[int], None]) -> None:
        events: list[tuple[float, int, Callable[[], Coroutine[Any, Any, None]] | int]] = []
        for o in self.plan.orders:
            events.append((o.at, len(events), functools.partial(self.order, o)))
        for r in self.plan.refunds:
            events.append((r.at, len(events), functools.partial(self.refund, r)))
        for d in self.plan.disputes:
            events.append((d.at, len(events), functools.partial(self.open_dispute, d)))
            if d.resolve_at is not None:
                events.append(
                    (d.resolve_at, len(events), functools.partial(self.resolve_dispute, d))
                )
        for day in range(self.plan.days):
            events.append((day + 1.0, len(events), day))
        events.sort(key=lambda e: (e[0], e[1]))
        self.t0 = time.monotonic()
        for at, _, what in events:
            await self.until(at)
            if isinstance(what, int):
                await self.payout_day(what)
                progress(what)
            else:
                await self.spawn(what())
        await self.drain_tasks()

    # -- the end

    def work_left(self) -> dict[str, int]:
        """Counts in the stack's database of what is still moving (the bench's data only)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT"
                    " (SELECT count(*) FROM earnings WHERE status = 'on_hold'),"
                    " (SELECT count(*) FROM earnings WHERE reserve_transaction_id IS NOT NULL"
                    "   AND reserve_released_at IS NULL),"
                    " (SELECT count(*) FROM disputes WHERE status = 'open'),"
                    " (SELECT count(*) FROM payouts WHERE status IN ('pending', 'processing')),"
                    " (SELECT count(*) FROM payouts WHERE status = 'paid'"
                    "   AND account_number = :returning)"
                ),
                {"returning": ACCOUNT_RETURNED},
            ).one()
        keys = ("on_hold", "reserves_held", "disputes_open", "payouts_in_flight", "returns_due")
        return dict(zip(keys, (int(v) for v in row), strict=True))

    async def tail(self, progress: Callable[[int], None]) -> int:
        """Simulated days with payouts and no new events until every hold, reserve and dispute
        that can end has ended. Returns the first day after."""
        exp = model(self.plan, self.facts, [])
        want = (exp.on_hold_count, exp.reserves_held_count, exp.open_disputes_count)
        day = self.plan.days
        while True:
            left = await asyncio.to_thread(self.work_left)
            if (left["on_hold"], left["reserves_held"], left["disputes_open"]) == want:
                break
            if day >= self.plan.days + MAX_TAIL_DAYS:
                self.problems.append(
                    f"after {MAX_TAIL_DAYS} days more: {left}, the model expects on hold, "
                    f"reserves held, disputes open = {want}"
                )
                break
            await self.until(day + 1.0)
            await self.payout_day(day)
            progress(day)
            day += 1
        await self.drain_tasks()
        return day

    def unreserved_runs(self) -> set[str]:
        """Payouts that runs started and that have no payout (yet, or ever: the reservation
        found less available than the run had decided)."""
        with self.engine.connect() as conn:
            return {
                str(p)
                for p in conn.execute(
                    text(
                        "SELECT r.payout_id FROM payout_runs r"
                        " LEFT JOIN payouts p ON p.id = r.payout_id"
                        " WHERE r.outcome = 'started' AND p.id IS NULL"
                    )
                ).scalars()
            }

    async def reserving(self) -> int:
        """Payout workflows started by a run that have reserved nothing yet and still run."""
        running = 0
        for payout_id in await asyncio.to_thread(self.unreserved_runs) - self.reserved_nothing:
            try:
                described = await self.temporal.get_workflow_handle(
                    f"payout/{payout_id}"
                ).describe()
            except RPCError:  # not started yet
                running += 1
                continue
            if described.status == WorkflowExecutionStatus.RUNNING:
                running += 1
            else:
                self.reserved_nothing.add(payout_id)
        return running

    async def settle_payouts(self, timeout: float) -> None:
        """Until no payout run is deciding, no payout reserving or in flight, and every payout to
        the returning account is returned; twice in a row, a second apart."""
        deadline = time.monotonic() + timeout
        calm = 0
        while calm < 2:
            left = await asyncio.to_thread(self.work_left)
            deciding = await self.temporal.count_workflows(
                "WorkflowType = 'PayoutRunWorkflow' AND ExecutionStatus = 'Running'"
            )
            left |= {"runs_deciding": deciding.count, "payouts_reserving": await self.reserving()}
            moving = {k: left[k] for k in SETTLING if left[k]}
            calm = 0 if moving else calm + 1
            if moving and time.monotonic() > deadline:
                self.problems.append(f"payouts still moving after {timeout:.0f} s: {moving}")
                return
            await asyncio.sleep(1.0)

    async def resume_returned(self, payouts: list[Json]) -> None:
        """A return pauses the seller's schedule; check it, and resume it as an operator would."""
        sellers = sorted({p["seller_id"] for p in payouts if p["status"] == "returned"})
        sellers = [s for s in sellers if s not in self.returned_sellers]

        async def one(seller_id: str) -> None:
            path = f"/v1/sellers/{seller_id}/payout_schedule"
            for _ in range(30):
                schedule = await self.api.json("schedule_get", path)
                if schedule is not None and schedule["paused"]:
                    break
                await asyncio.sleep(1.0)
            else:
                self.problems.append(f"seller {seller_id}: schedule not paused after a return")
            resumed = await self.api.call("schedule_resume", "POST", f"{path}/resume")
            if resumed is not None and resumed.json()["paused"]:
                self.problems.append(f"seller {seller_id}: schedule still paused after resume")
            self.returned_sellers.add(seller_id)

        await self.for_all(sellers, one)
        self.counts["schedules paused by a return, resumed"] += len(sellers)

    async def final_round(self, day: int, available: dict[str, int]) -> list[str]:
        """A payout run for every seller; each must decide what the model says."""
        mismatches: list[str] = []
        outcomes: Counter[str] = Counter()

        async def one(seller_id: str) -> None:
            s = self.plan.sellers[seller_id]
            expected = run_expectation(s, available[seller_id])
            async with self.locks[seller_id]:
                bad = bad_run(self.seed, seller_id, day) if s.has_account else None
                if bad is not None:
                    self.counts[f"payout runs to a {bad}ing account"] += 1
                    await self.set_account(seller_id, BAD_ACCOUNTS[bad])
                try:
                    run = await self.observe_run(seller_id)
                    if run is not None and run["outcome"] == "started":
                        await self.wait_for_payout(run["payout_id"])
                finally:
                    if bad is not None:
                        await self.set_account(seller_id, ACCOUNT_PAID)
            if run is None:
                mismatches.append(f"final run of {seller_id}: not seen")
                return
            got = (run["outcome"], run["amount"], run["reason"])
            outcomes[run["outcome"] if run["reason"] is None else run["reason"]] += 1
            if got != expected:
                mismatches.append(f"final run of {seller_id}: {got}, model {expected}")

        await self.for_all(list(self.plan.sellers), one)
        for outcome, n in sorted(outcomes.items()):
            self.counts[f"final runs: {outcome}"] = n
        return mismatches


# ---------------------------------------------------------------------------- checks


def compare_views(
    label: str, expected: Totals, normal: str, got: dict[str, Json], keys: dict[str, str]
) -> list[str]:
    """``got`` maps ``keys[view]`` to {credits, debits, amount}."""
    out = []
    for view, (credits, debits, amount) in expected.views(normal).items():
        g = got[keys[view]]
        if (g["credits"], g["debits"], g["amount"]) != (credits, debits, amount):
            out.append(
                f"{label} {view}: API credits/debits/amount {g['credits']}/{g['debits']}/"
                f"{g['amount']}, model {credits}/{debits}/{amount}"
            )
    return out


SELLER_VIEWS = {"pending": "pending", "posted": "posted", "available": "available"}
ACCOUNT_VIEWS = {
    "pending": "pending_balance",
    "posted": "posted_balance",
    "available": "available_balance",
}


def ledger_sums(engine: Engine) -> tuple[dict[str, Totals], dict[str, Totals], tuple[int, int]]:
    """From the ledger tables: per account, the entries summed by status and direction; the
    accounts' running totals; and credits - debits over all pending and all posted entries."""
    entries: dict[str, Totals] = defaultdict(Totals)
    running: dict[str, Totals] = {}
    zero = {"pending": 0, "posted": 0}
    with engine.connect() as conn:
        for account, status, direction, amount in conn.execute(
            text(
                "SELECT e.account_id, t.status, e.direction, sum(e.amount) FROM ledger_entries e"
                " JOIN ledger_transactions t ON t.id = e.transaction_id"
                " WHERE t.status IN ('pending', 'posted') GROUP BY 1, 2, 3"
            )
        ):
            totals = entries[str(account)]
            setattr(totals, f"{status}_{direction}s", int(amount))
            zero[status] += int(amount) if direction == "credit" else -int(amount)
        for row in conn.execute(
            text(
                "SELECT id, pending_debits, pending_credits, posted_debits, posted_credits"
                " FROM ledger_accounts"
            )
        ):
            running[str(row[0])] = Totals(*(int(v) for v in row[1:]))
    return entries, running, (zero["pending"], zero["posted"])


def transactions_by_external_id(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(
            str(e)
            for e in conn.execute(
                text("SELECT external_id FROM ledger_transactions WHERE external_id IS NOT NULL")
            ).scalars()
        )


def earning_rows(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {str(o) for o in conn.execute(text("SELECT order_id FROM earnings")).scalars()}


async def checkpoint(
    sim: Simulation, label: str, bank: SimulatedBankAdmin, *, full: bool
) -> tuple[Expected | None, list[Json], list[str]]:
    """Everything the model predicts against the API and the ledger tables."""
    api, plan = sim.api, sim.plan
    mismatches: list[str] = []
    payouts = await api.list_all("payouts_list", "/v1/payouts")
    if payouts is None:
        return None, [], [f"{label}: could not list the payouts"]
    exp = model(plan, sim.facts, payouts)
    mismatches += exp.problems

    # The API's seller balances.
    async def seller(seller_id: str) -> None:
        got = await api.json("balances_get", f"/v1/sellers/{seller_id}/balances")
        if got is None:
            mismatches.append(f"seller {seller_id}: no balances")
            return
        want = exp.sellers[seller_id]
        mismatches.extend(
            compare_views(f"seller {seller_id}", want.totals, "credit", got, SELLER_VIEWS)
        )
        for key in ("on_hold", "in_reserve", "in_dispute"):
            if got[key] != getattr(want, key):
                mismatches.append(
                    f"seller {seller_id} {key}: API {got[key]}, model {getattr(want, key)}"
                )

    await sim.for_all(list(plan.sellers), seller)

    # The platform's accounts, through the ledger API.
    platform_ids: dict[str, str] = {}
    for role in PLATFORM_ROLES:
        listed = await api.json(
            "ledger_accounts_get",
            "/v1/ledger_accounts",
            ledger_id=sim.ledger_id,
            external_id=f"platform:{role}",
        )
        if listed is None or len(listed["items"]) != 1:
            mismatches.append(f"platform account {role}: not found")
            continue
        account = listed["items"][0]
        platform_ids[role] = account["id"]
        normal = "debit" if role == "clearing" else "credit"
        mismatches += compare_views(
            f"platform {role}", exp.platform[role], normal, account["balances"], ACCOUNT_VIEWS
        )

    # The ledger tables: entries per account, running totals, zero sum.
    entries, running, zero = await asyncio.to_thread(ledger_sums, sim.engine)
    if zero != (0, 0):
        mismatches.append(f"ledger does not sum to zero: pending {zero[0]}, posted {zero[1]}")
    accounts = {f"seller {s}": (a, exp.sellers[s].totals) for s, a in sim.ledger_accounts.items()}
    accounts |= {f"platform {r}": (a, exp.platform[r]) for r, a in platform_ids.items()}
    for name, (account_id, want_totals) in accounts.items():
        summed = entries.get(account_id, Totals()).astuple()
        kept = running.get(account_id, Totals()).astuple()
        if summed != want_totals.astuple():
            mismatches.append(f"{name}: ledger entries {summed}, model {want_totals.astuple()}")
        if kept != summed:
            mismatches.append(f"{name}: running totals {kept}, entries {summed}")
    unknown = set(running) - {a for a, _ in accounts.values()}
    if unknown:
        mismatches.append(f"{len(unknown)} ledger accounts the bench does not know")

    # Payouts: the outcome their destination calls for, nothing in flight.
    for p in payouts:
        want = exp.payouts[p["id"]]
        if p["status"] != want:
            mismatches.append(f"payout {p['id']}: {p['status']}, model {want}")
        if want == "failed" and p["failure_code"] != "account_closed":
            mismatches.append(f"payout {p['id']}: failure code {p['failure_code']}")

    if full:
        mismatches += await check_lists(sim, exp)
        mismatches += await asyncio.to_thread(check_exactly_once, sim, exp, payouts)
        mismatches += await asyncio.to_thread(check_bank, bank, payouts)
        mismatches += check_paid_no_more_than_earned(sim, exp, payouts)
    return exp, payouts, mismatches


async def check_lists(sim: Simulation, exp: Expected) -> list[str]:
    """Every earning and dispute as the API lists it, against the model."""
    mismatches: list[str] = []
    seen: set[str] = set()

    async def earnings(seller_id: str) -> None:
        items = await sim.api.list_all("earnings_list", f"/v1/sellers/{seller_id}/earnings")
        if items is None:
            mismatches.append(f"seller {seller_id}: could not list earnings")
            return
        for e in items:
            seen.add(e["order_id"])
            want = exp.earnings.get(e["order_id"])
            if want is None:
                mismatches.append(f"earning {e['order_id']}: not an accepted order")
                continue
            got = (e["status"], e["net"])
            if got != (want.status, want.net):
                mismatches.append(f"earning {e['order_id']}: {got}, model {want}")
            if want.reserve_amount is not None and e["reserve_amount"] != want.reserve_amount:
                mismatches.append(
                    f"earning {e['order_id']}: reserve {e['reserve_amount']}, "
                    f"model {want.reserve_amount}"
                )
            if want.status in ("posted", "refunded") and want.reserve_amount:
                released = e["reserve_released_at"] is not None
                if released == want.reserve_held:
                    mismatches.append(
                        f"earning {e['order_id']}: reserve released {released}, "
                        f"model held {want.reserve_held}"
                    )

    async def schedule(seller_id: str) -> None:
        got = await sim.schedule(seller_id)
        if got is None:
            mismatches.append(f"seller {seller_id}: no payout schedule")
            return
        sim.counts["triggers skipped by the schedules (a run still going)"] += got[
            "runs_skipped_overlapping"
        ]

    await sim.for_all(list(sim.plan.sellers), earnings)
    await sim.for_all(list(sim.plan.sellers), schedule)
    missing = set(exp.earnings) - seen
    if missing:
        mismatches.append(f"{len(missing)} accepted orders not listed, e.g. {sorted(missing)[:3]}")
    disputes = await sim.api.list_all("disputes_list", "/v1/disputes")
    if disputes is None:
        return [*mismatches, "could not list the disputes"]
    got_disputes = {d["id"]: d["status"] for d in disputes}
    if got_disputes != exp.disputes:
        wrong = {
            k: (got_disputes.get(k), exp.disputes.get(k))
            for k in got_disputes.keys() | exp.disputes.keys()
            if got_disputes.get(k) != exp.disputes.get(k)
        }
        mismatches.append(f"disputes (API, model): {dict(list(wrong.items())[:5])}")
    return mismatches


def check_exactly_once(sim: Simulation, exp: Expected, payouts: list[Json]) -> list[str]:
    """One ledger transaction per order, refund after posting, dispute, reserve, payout and
    return, and one per earning booked again; none for anything the bench did not do."""
    booked = transactions_by_external_id(sim.engine)
    want: Counter[str] = Counter()
    for order_id, order in sim.facts.orders.items():
        key = f"{order.plan.seller}/{order_id}"  # an earning is its seller's and its order's
        want[f"earning:{key}"] = 1
        for n in range(1, exp.rebooks[order_id] + 1):
            want[f"rebook:{n}:{key}"] = 1
    for refund_id in exp.after_posting_refunds:
        want[f"refund:{refund_id}"] = 1
    for dispute_id in sim.facts.disputes:
        want[f"dispute:{dispute_id}"] = 1
    for order_id in exp.reserves:
        want[f"reserve:{sim.facts.orders[order_id].plan.seller}/{order_id}"] = 1
    for p in payouts:
        want[f"payout:{p['id']}"] = 1
        if exp.payouts[p["id"]] == "returned":
            want[f"payout:{p['id']}:return"] = 1
    mismatches = []
    if booked != want:
        diff = {
            k: (booked.get(k, 0), want.get(k, 0))
            for k in booked.keys() | want.keys()
            if booked.get(k, 0) != want.get(k, 0)
        }
        mismatches.append(
            f"ledger transactions (booked, model) differ for {len(diff)} keys, e.g. "
            f"{dict(sorted(diff.items())[:5])}"
        )
    rows = earning_rows(sim.engine)
    if rows != set(sim.facts.orders):
        mismatches.append(
            f"earnings rows {len(rows)} for {len(sim.facts.orders)} accepted orders "
            f"(e.g. {sorted(rows ^ set(sim.facts.orders))[:3]})"
        )
    return mismatches


def check_bank(bank: SimulatedBankAdmin, payouts: list[Json]) -> list[str]:
    """Every payout at the bank once, same amount and outcome, paid at most once."""
    at_bank = {p.request.payout_id: p for p in bank.list_payouts()}
    mismatches = []
    for p in payouts:
        b = at_bank.pop(p["id"], None)
        if b is None:
            mismatches.append(f"payout {p['id']} ({p['status']}) never reached the bank")
            continue
        if b.times_paid > 1:
            mismatches.append(f"payout {p['id']}: paid {b.times_paid} times at the bank")
        if (b.request.amount, str(b.status.status)) != (p["amount"], p["status"]):
            mismatches.append(
                f"payout {p['id']}: bank {b.request.amount} {b.status.status}, "
                f"platform {p['amount']} {p['status']}"
            )
    if at_bank:
        mismatches.append(f"{len(at_bank)} payouts at the bank the platform does not list")
    return mismatches


def check_paid_no_more_than_earned(
    sim: Simulation, exp: Expected, payouts: list[Json]
) -> list[str]:
    """No seller was paid, by any of its payouts, more than the net of the orders it had been
    sent by then (refunds, chargebacks, reserves and returns only lower what may be paid)."""
    earned: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for fact in sim.facts.orders.values():
        earned[fact.plan.seller].append((fact.requested_at, fact.plan.amount - fact.plan.fee))
    by_seller: dict[str, list[Json]] = defaultdict(list)
    for p in payouts:
        by_seller[p["seller_id"]].append(p)
    mismatches = []
    for seller_id, items in by_seller.items():
        paid = 0
        for p in sorted(items, key=lambda p: str(p["created_at"])):
            created = datetime.fromisoformat(p["created_at"])
            if exp.payouts[p["id"]] == "paid":
                paid += int(p["amount"])
            bound = sum(net for at, net in earned[seller_id] if at < created)
            if paid > bound:
                mismatches.append(
                    f"seller {seller_id}: {paid} paid by payout {p['id']}, only {bound} earned"
                )
                break
    return mismatches


# ---------------------------------------------------------------------------- running it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_bank(folder: Path, port: int, key: str) -> subprocess.Popen[bytes]:
    log = (folder / "rail.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "payment_rail",
            "--port",
            str(port),
            "--data-dir",
            str(folder / "rail"),
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(
                f"http://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {key}"}
            ).is_success:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the simulated bank did not start; see {folder / 'rail.log'}")
        time.sleep(0.2)


def report(
    api: Api, sim: Simulation, walls: dict[str, float], sim_seconds: float, args: Any
) -> None:
    total = sum(walls.values())
    print("\nWall time")
    for name, seconds in walls.items():
        print(f"  {name:<34} {seconds:8.1f} s")
    print(f"  {'total':<34} {total:8.1f} s")
    print(f"  (largest lag behind the simulated clock: {sim.max_lag:.1f} s)")

    simulated = api.requests("simulation")
    print(
        f"\nAPI requests: {api.requests()} in all; {simulated} while simulating "
        f"({simulated / sim_seconds:.1f} /s over {sim_seconds:.0f} s), "
        f"{api.requests('verification')} verifying; {sum(api.retries.values())} retried "
        f"(502/503/connection)"
    )
    print(
        f"  {'phase':<13} {'kind':<20} {'requests':>8} {'per s':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}  statuses"
    )
    phase_seconds = {
        "setup": walls[SETUP],
        "simulation": sim_seconds,
        "verification": walls["checkpoints A and B"],
    }
    for (phase, kind), values in sorted(api.latencies.items()):
        statuses = ", ".join(
            f"{status or 'conn'}: {n}"
            for (p, k, status), n in sorted(api.statuses.items())
            if (p, k) == (phase, kind)
        )
        print(
            f"  {phase:<13} {kind:<20} {len(values):>8} "
            f"{len(values) / phase_seconds[phase]:>7.1f} {percentile(values, 0.5) * 1000:>8.0f} "
            f"{percentile(values, 0.99) * 1000:>8.0f} {max(values) * 1000:>8.0f}  {statuses}"
        )
    everything = [v for values in api.latencies.values() for v in values]
    print(
        f"  all requests: p50 {percentile(everything, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(everything, 0.99) * 1000:.0f} ms"
    )

    print("\nEvents")
    for name, n in sorted(sim.counts.items()):
        print(f"  {name:<44} {n:>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sellers", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=30, help="simulated days of orders")
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=None,
        help="real seconds per simulated day (default: orders / days / rate)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=40.0,
        help="orders per second the month is paced for, when --day-seconds is not given",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP requests in flight")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder")
    args = parser.parse_args()
    day_seconds = args.day_seconds or max(10.0, args.orders / args.days / args.rate)

    from server.settings import Settings
    from server.stack import Stack

    folder = Path(tempfile.mkdtemp(prefix="bench-marketplace-"))
    key = "sk_bench_" + secrets.token_urlsafe(24)
    rail_key = "rk_bench_" + secrets.token_urlsafe(24)
    api_port, rail_port = free_port(), free_port()
    os.environ.update(
        PAYOUTS_DATA_DIR=str(folder),
        PAYOUTS_API_PORT=str(api_port),
        PAYOUTS_TEMPORAL_PORT=str(free_port()),
        PAYOUTS_TEMPORAL_UI_PORT=str(free_port()),
        PAYOUTS_ADMIN_API_KEY=key,
        PAYOUTS_DB_POOL_SIZE=str(max(20, args.concurrency)),
        PAYOUTS_LOG_LEVEL="WARNING",
        PAYOUTS_WORKER_METRICS_PORT="0",
        # The bank: a service of its own, which the worker pays through and which posts its
        # webhooks to the stack's API.
        PAYOUTS_RAIL_URL=f"http://127.0.0.1:{rail_port}",
        PAYOUTS_RAIL_API_KEY=rail_key,
        PAYOUTS_RAIL_WEBHOOK_URL=f"http://127.0.0.1:{api_port}/v1/rail/webhooks",
        PAYOUTS_RAIL_SETTLE_SECONDS=str(SETTLE_DAYS * day_seconds),
        PAYOUTS_RAIL_RETURN_SECONDS=str(RETURN_DAYS * day_seconds),
        PAYOUTS_RAIL_POLL_SECONDS=str(max(10.0, day_seconds)),
        PAYOUTS_RETURN_WINDOW=str(RETURN_WINDOW_DAYS * day_seconds / 86_400),
    )
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "PAYOUTS_RAIL_WEBHOOK_SECRET"):
        os.environ.pop(name, None)

    run = f"mk{uuid.uuid4().hex[:6]}"
    plan = make_plan(args.seed, run, args.sellers, args.orders, args.days)
    print(
        f"{args.sellers} sellers, {len(plan.orders)} orders over {args.days} simulated days of "
        f"{day_seconds:.1f} s ({args.days * day_seconds / 60:.1f} min), {len(plan.refunds)} "
        f"refunds, {len(plan.disputes)} chargebacks; {args.concurrency} requests in flight, "
        f"seed {args.seed}; {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    walls: dict[str, float] = {}
    stack = Stack(Settings())
    rail: subprocess.Popen[bytes] | None = None
    ok = False
    try:
        started = time.monotonic()
        rail = start_bank(folder, rail_port, rail_key)
        stack.start()
        walls["stack start"] = time.monotonic() - started
        print(f"  stack up in {walls['stack start']:.1f} s: {folder}")
        engine = create_db_engine(stack.database_url, pool_size=2)
        bank = SimulatedBankAdmin(f"http://127.0.0.1:{rail_port}", rail_key, timeout=120)
        ok = asyncio.run(
            simulate(
                plan,
                args,
                day_seconds,
                stack.api_base_url,
                key,
                stack.temporal_address,
                engine,
                bank,
                walls,
            )
        )
        engine.dispose()
        bank.close()
    finally:
        stack.stop()
        if rail is not None:
            rail.terminate()
            rail.wait(10)
        if ok and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"\nThe stack's folder (logs, databases) is kept: {folder}")
    return 0 if ok else 1


async def simulate(
    plan: Plan,
    args: Any,
    day_seconds: float,
    api_url: str,
    key: str,
    temporal_address: str,
    engine: Engine,
    bank: SimulatedBankAdmin,
    walls: dict[str, float],
) -> bool:
    api = Api(api_url, key, args.concurrency)
    temporal = await Client.connect(temporal_address)
    sim = Simulation(
        plan,
        api,
        engine,
        temporal,
        seed=args.seed,
        day_seconds=day_seconds,
        concurrency=args.concurrency,
    )
    try:
        started = time.monotonic()
        await sim.setup()
        walls[SETUP] = time.monotonic() - started
        print(f"  {len(plan.sellers)} sellers with accounts and schedules in {walls[SETUP]:.1f} s")

        api.phase = "simulation"
        sim_started = time.monotonic()
        last = [sim_started, 0]

        def progress(day: int) -> None:
            now = time.monotonic()
            requests = api.requests("simulation")
            print(
                f"  day {day + 1:>3}: {sim.counts['orders accepted']:>6} orders accepted, "
                f"{(requests - last[1]) / max(now - last[0], 1e-9):5.1f} requests/s, "
                f"{now - sim_started:7.0f} s, lag {sim.lag(day + 1):5.0f} s, "
                f"{len(api.errors)} errors",
                flush=True,
            )
            last[:] = [now, requests]

        await sim.month(progress)
        walls["month"] = time.monotonic() - sim_started
        print(f"  month done in {walls['month']:.0f} s (planned {plan.days * day_seconds:.0f} s)")

        started = time.monotonic()
        day = await sim.tail(progress)
        await sim.settle_payouts(timeout=max(300.0, 5 * day_seconds))
        walls["tail (until holds, reserves, disputes end)"] = time.monotonic() - started
        print(f"  {day - plan.days} days more until everything that ends had ended")

        api.phase = "verification"
        started = time.monotonic()
        exp_a, payouts_a, mismatches_a = await checkpoint(sim, "A", bank, full=False)
        verify_a = time.monotonic() - started
        print(f"\nCheckpoint A ({len(payouts_a)} payouts): {len(mismatches_a)} mismatches")
        for line in mismatches_a[:20]:
            print(f"  {line}")

        api.phase = "simulation"
        started = time.monotonic()
        await sim.resume_returned(payouts_a)
        if exp_a is None:
            final = ["no model at checkpoint A"]
        else:
            available = {s: state.available for s, state in exp_a.sellers.items()}
            final = await sim.final_round(day, available)
        await sim.settle_payouts(timeout=max(300.0, 5 * day_seconds))
        walls["final payout round"] = time.monotonic() - started
        print(f"Final payout round: {len(final)} mismatches")
        for line in final[:20]:
            print(f"  {line}")

        api.phase = "verification"
        started = time.monotonic()
        exp_b, payouts_b, mismatches_b = await checkpoint(sim, "B", bank, full=True)
        walls["checkpoints A and B"] = verify_a + time.monotonic() - started
        print(f"Checkpoint B ({len(payouts_b)} payouts, in full): {len(mismatches_b)} mismatches")
        for line in mismatches_b[:20]:
            print(f"  {line}")
    finally:
        await api.http.aclose()

    sim.counts["payout runs started whose payout reserved nothing"] = len(sim.reserved_nothing)
    statuses = Counter(p["status"] for p in payouts_b)
    for status, n in statuses.items():
        sim.counts[f"payouts {status} ({100 * n / len(payouts_b):.1f}%)"] = n
    sim_seconds = (
        walls["month"]
        + walls["tail (until holds, reserves, disputes end)"]
        + walls["final payout round"]
    )
    report(api, sim, walls, sim_seconds, args)

    failures = [*sim.problems, *api.errors]
    print("\nModel check")
    if exp_b is not None:
        print(
            f"  checked: {len(plan.sellers)} sellers (3 views, credits and debits, on hold, in "
            f"reserve, in dispute), {len(PLATFORM_ROLES)} platform accounts, "
            f"{len(exp_b.earnings)} earnings, {len(exp_b.disputes)} disputes, "
            f"{len(payouts_b)} payouts, ledger entries and running totals, the bank"
        )
    for name, found in (
        ("checkpoint A", mismatches_a),
        ("final round", final),
        ("checkpoint B", mismatches_b),
        ("requests and bench", failures),
    ):
        print(f"  {name:<20} {'OK' if not found else f'{len(found)} FAILED'}")
        for line in found[:10]:
            print(f"    {line}")
    return not (mismatches_a or final or mismatches_b or failures)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Skip interpreter finalisation: the Temporal runtime's threads may still hold the GIL state.
    os._exit(code)
