"""Scheduled payouts for many sellers at once, on the embedded stack; next to the same Temporal
server's trivial-workflow rate, measured in the same run.

The stack is the one ``make run`` starts (``server.stack.Stack``: embedded PostgreSQL, Temporal
dev server, worker and API as child processes, free ports, a temporary folder), with the
in-process simulated bank settling after ``--settle`` seconds. Then:

1. creates ``--sellers`` sellers through the marketplace and payouts domain code: an earning
   booked and posted at once (hold 0), a payout account that the bank pays;
2. puts a payout schedule per seller (``manual``), ``--schedule-concurrency`` at a time (8: the
   dev server answered 32 concurrent schedule creations with "h2 protocol error"), and triggers
   them all at once, ``--concurrency`` triggers in flight: each trigger is a schedule firing,
   whose run decides and starts the payout workflow, which reserves, submits to the bank and
   waits for the outcome. Transient RPC errors (unavailable, h2/internal, resource exhausted,
   deadline) are retried with back-off; putting a schedule is idempotent, and a repeated trigger
   only records a skip (the first run reserved everything available);
3. reports the time from the first trigger until every payout is ``paid``, and payouts/s;
4. runs a no-op workflow (start and complete) with the same concurrency on the same Temporal
   server (``bench/holds.py``'s), and reports the ratio.

Payouts learn their outcome by the bank's signed webhook: the stack points the worker's
in-process bank at the API's ``/v1/rail/webhooks``. The status poll (``--poll``, default 60 s)
is only the fallback; a sample of the payout workflows is queried afterwards to show how many
learnt it by webhook.

Usage: python bench/payout_run.py [--sellers 1000] [--concurrency 32] [--schedule-concurrency 8]
       [--settle 1] [--poll 60]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# This folder, for the bench's shared modules (common, noop).
sys.path.append(str(Path(__file__).resolve().parent))

from common import bench_key, percentile, stack_environment
from noop import bench_noop, noop_worker
from sqlalchemy import Engine, text
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from marketplace import Marketplace
from marketplace.payouts import Payouts
from server.database import create_db_engine
from temporal_calls.payouts import get_payout_state
from temporal_calls.schedules import put_payout_schedule, trigger_payout_schedule

TRANSIENT = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.INTERNAL,  # "h2 protocol error" and other transport failures
    RPCStatusCode.UNKNOWN,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.ABORTED,
}
ATTEMPTS = 8


class Retries:
    count = 0


async def with_retries(call: Callable[[], Awaitable[object]]) -> None:
    """``call`` again after a transient RPC error, with exponential back-off."""
    for attempt in range(ATTEMPTS):
        try:
            await call()
            return
        except RPCError as err:
            if err.status not in TRANSIENT or attempt == ATTEMPTS - 1:
                raise
            Retries.count += 1
            await asyncio.sleep(min(5.0, 0.1 * 2**attempt))


def create_sellers(engine: Engine, run: str, count: int, amount: int) -> list[str]:
    market = Marketplace()
    payouts = Payouts(market)
    ids = [f"{run}-{i:05d}" for i in range(count)]
    for start in range(0, count, 100):
        with engine.begin() as conn:
            for seller_id in ids[start : start + 100]:
                market.create_seller(
                    conn,
                    seller_id=seller_id,
                    name=f"Bench {seller_id}",
                    currency="USD",
                    hold_period=timedelta(0),
                )
                order = f"{seller_id}-order"
                market.book_earning(conn, seller_id=seller_id, order_id=order, amount=amount)
                market.post_earning(conn, seller_id, order)
                payouts.set_payout_account(
                    conn, seller_id, "000123456789", "110000000", "Bench Holder"
                )
    return ids


async def for_all(
    items: list[str], concurrency: int, call: Callable[[str], Awaitable[object]]
) -> None:
    queue = list(items)

    async def worker() -> None:
        while queue:
            item = queue.pop()
            await with_retries(functools.partial(call, item))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def count_paid(engine: Engine, run: str) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'paid'),"
                " count(*) FILTER (WHERE status IN ('failed', 'cancelled'))"
                " FROM payouts WHERE seller_id LIKE :prefix"
            ),
            {"prefix": f"{run}-%"},
        ).one()
    return int(row[0]), int(row[1])


def payout_ids(engine: Engine, run: str, limit: int) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id FROM payouts WHERE seller_id LIKE :prefix ORDER BY random() LIMIT :n"),
            {"prefix": f"{run}-%", "n": limit},
        )
        return [str(r[0]) for r in rows]


async def how_learnt(client: Client, ids: list[str]) -> tuple[int, int]:
    """Of these payouts' workflows: how many heard the rail's webhook, how many polled it."""
    states = [await get_payout_state(client, payout_id) for payout_id in ids]
    return sum(s.rail_events > 0 for s in states), sum(s.rail_polls > 0 for s in states)


async def bench_payouts(
    address: str,
    engine: Engine,
    run: str,
    sellers: list[str],
    concurrency: int,
    schedule_concurrency: int,
    timeout: float,
) -> tuple[float, float, tuple[int, int, int]]:
    client = await Client.connect(address)
    put_started = time.monotonic()
    await for_all(
        sellers,
        schedule_concurrency,
        lambda s: put_payout_schedule(client, s, interval="manual"),
    )
    print(
        f"  {len(sellers)} schedules put in {time.monotonic() - put_started:.1f} s "
        f"({schedule_concurrency} at a time, {Retries.count} transient errors retried); "
        "triggering all"
    )
    started = time.monotonic()
    await for_all(sellers, concurrency, lambda s: trigger_payout_schedule(client, s))
    triggered = time.monotonic() - started
    while True:
        paid, failed = await asyncio.to_thread(count_paid, engine, run)
        if paid + failed >= len(sellers):
            break
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {paid} of {len(sellers)} paid after {timeout:.0f} s")
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    assert failed == 0, f"{failed} payouts failed"
    sample = await asyncio.to_thread(payout_ids, engine, run, 50)
    by_webhook, polled = await how_learnt(client, sample)
    return triggered, elapsed, (len(sample), by_webhook, polled)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sellers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32, help="triggers in flight")
    parser.add_argument(
        "--schedule-concurrency", type=int, default=8, help="schedule creations in flight"
    )
    parser.add_argument("--amount", type=int, default=10_000, help="minor units per seller")
    parser.add_argument("--settle", type=float, default=1.0, help="bank settle delay, seconds")
    parser.add_argument(
        "--poll", type=float, default=60.0, help="status poll when no webhook came, seconds"
    )
    parser.add_argument("--noop-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--noop-worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_worker:
        asyncio.run(noop_worker(args.noop_worker))
        return 0

    from server.settings import Settings
    from server.stack import Stack

    folder = Path(tempfile.mkdtemp(prefix="bench-payouts-"))
    # The stack points the worker's bank at its API's webhook endpoint (with the dev secret).
    stack_environment(
        folder,
        bench_key(),
        unset=("PAYOUTS_RAIL_URL", "PAYOUTS_RAIL_WEBHOOK_URL", "PAYOUTS_RAIL_WEBHOOK_SECRET"),
        PAYOUTS_DB_POOL_SIZE=str(max(20, args.concurrency)),
        PAYOUTS_RAIL_SETTLE_SECONDS=str(args.settle),
        PAYOUTS_RAIL_POLL_SECONDS=str(args.poll),
    )
    stack = Stack(Settings())
    noop: subprocess.Popen[bytes] | None = None
    try:
        print(f"Starting the embedded stack in {folder} ...")
        stack.start()
        print(f"  up: Temporal {stack.temporal_address}, {os.cpu_count()} CPUs")
        engine = create_db_engine(stack.database_url, pool_size=4)
        run = f"pr{uuid.uuid4().hex[:6]}"
        created = time.monotonic()
        sellers = create_sellers(engine, run, args.sellers, args.amount)
        print(
            f"  {len(sellers)} sellers with available money in {time.monotonic() - created:.1f} s"
        )
        print(
            f"\n{len(sellers)} scheduled payouts, {args.concurrency} concurrent triggers, "
            f"bank settles after {args.settle:g} s, status poll {args.poll:g} s"
        )
        triggered, elapsed, (sampled, by_webhook, polled) = asyncio.run(
            bench_payouts(
                stack.temporal_address,
                engine,
                run,
                sellers,
                args.concurrency,
                args.schedule_concurrency,
                args.timeout,
            )
        )
        payouts_per_second = len(sellers) / elapsed
        print(f"  all triggered in {triggered:.1f} s; all paid {elapsed:.1f} s after the first")
        print(
            f"  of {sampled} sampled payout workflows, {by_webhook} heard the webhook, "
            f"{polled} polled the bank"
        )
        print(f"  {payouts_per_second:.1f} payouts/s (paid, end to end)")
        engine.dispose()

        noop = subprocess.Popen(
            [sys.executable, __file__, "--noop-worker", stack.temporal_address],
            start_new_session=True,
        )
        ceiling = asyncio.run(
            bench_noop(stack.temporal_address, args.concurrency, args.noop_seconds)
        )
        print(
            f"\nTrivial workflow, {args.concurrency} concurrent, same server: "
            f"{ceiling.per_second:.0f}/s (p50 {percentile(ceiling.latencies, 0.5) * 1000:.0f} ms)"
        )
        print("\nSummary")
        print(f"  scheduled payouts paid   {payouts_per_second:8.1f} /s")
        print(f"  trivial workflows        {ceiling.per_second:8.1f} /s")
        print(f"  ratio                    {payouts_per_second / ceiling.per_second:8.3f}")
        return 0
    finally:
        if noop is not None:
            noop.terminate()
            noop.wait(10)
        stack.stop()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Skip interpreter finalisation: the Temporal runtime's threads may still hold the GIL state.
    os._exit(code)
