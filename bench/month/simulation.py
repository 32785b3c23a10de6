"""The simulation: sets up the sellers, sends the month's events at their time, triggers the
payout runs and waits for the platform to settle."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from bench.month.client import Api
from bench.month.model import Facts, OrderFact, RefundFact, model, run_expectation
from bench.month.plan import (
    BAD_ACCOUNTS,
    EXPIRE_DAYS,
    MAX_TAIL_DAYS,
    OBSERVE_TIMEOUT,
    SCHEDULE_CONCURRENCY,
    SETTLING,
    SKIP_CHECK,
    WEEKDAYS,
    DisputePlan,
    Json,
    OrderPlan,
    Plan,
    RefundPlan,
    SellerPlan,
    bad_run,
)
from payment_rail import ACCOUNT_PAID, ACCOUNT_RETURNED, TEST_ROUTING_NUMBER

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
