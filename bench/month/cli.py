"""Running it (``python -m bench.month``): the stack and the bank, the flags, the run, the
report."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client

from bench.common import bench_key, free_port, percentile, stack_environment
from bench.month import __doc__ as PACKAGE_DOC
from bench.month.checks import checkpoint
from bench.month.client import Api
from bench.month.plan import (
    PLATFORM_ROLES,
    RETURN_DAYS,
    RETURN_WINDOW_DAYS,
    SETTLE_DAYS,
    SETUP,
    Plan,
    make_plan,
)
from bench.month.simulation import Simulation
from payment_rail.client import SimulatedBankAdmin
from server.database import create_db_engine

# ---------------------------------------------------------------------------- running it


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
        cwd=Path(__file__).resolve().parents[2],  # the repository
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
    parser = argparse.ArgumentParser(
        prog="python -m bench.month", description=(PACKAGE_DOC or "").split("\n\n")[0]
    )
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
    key = bench_key()
    rail_key = "rk_bench_" + secrets.token_urlsafe(24)
    api_port, rail_port = free_port(), free_port()
    stack_environment(
        folder,
        key,
        unset=("PAYOUTS_RAIL_WEBHOOK_SECRET",),
        PAYOUTS_API_PORT=str(api_port),
        PAYOUTS_DB_POOL_SIZE=str(max(20, args.concurrency)),
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
