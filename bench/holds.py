"""Earnings through the API, held and posted by the hold workflows, on the embedded stack; next to
the same Temporal server's trivial-workflow rate, measured in the same run, as the ceiling.

The stack is the one ``make run`` starts (``payouts.stack.Stack``): an embedded PostgreSQL and a
Temporal dev server (SQLite in WAL mode) in a temporary folder, the worker and the API as child
processes, all on free ports. Then:

1. creates ``--sellers`` sellers with a hold of ``--hold`` seconds;
2. posts ``--earnings`` earnings per seller (``POST /v1/sellers/{id}/earnings``) from
   ``--concurrency`` concurrent HTTP clients, round-robin over the sellers, and reports the
   earnings accepted per second and the request latency;
3. waits until every earning has posted and reports the delay between each hold's end
   (``hold_until``) and its posting (``posted_at``), from the earnings table;
4. checks that every order was booked exactly once in the ledger;
5. runs a no-op workflow (start and complete) as fast as possible with the same concurrency, with
   a worker in a child process like the platform's, on the same Temporal server: the ceiling.

Usage: python bench/holds.py [--sellers 1000] [--earnings 10] [--concurrency 32] [--hold 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from temporalio import workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

from payouts.database import create_db_engine

NOOP_QUEUE = "bench-noop"


@workflow.defn(sandboxed=False)
class NoopWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Rate:
    count: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


async def run_concurrently(
    jobs: list[object], concurrency: int, one: object
) -> tuple[float, list[float]]:
    """Run ``one(job)`` for every job with ``concurrency`` workers; (elapsed, latencies)."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []

    async def worker() -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            await one(job)  # type: ignore[operator]
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def bench_earnings(
    api_url: str, key: str, run: str, sellers: int, earnings: int, concurrency: int, hold: int
) -> tuple[Rate, list[str]]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    seller_ids = [f"{run}-s{n:05}" for n in range(sellers)]
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, limits=limits, timeout=120
    ) as http:

        async def create(seller_id: object) -> None:
            response = await http.post(
                "/v1/sellers",
                json={
                    "id": seller_id,
                    "name": f"Bench {seller_id}",
                    "currency": "USD",
                    "hold_period": f"PT{hold}S",
                },
            )
            assert response.status_code == 201, response.text

        elapsed, _ = await run_concurrently(list(seller_ids), concurrency, create)
        print(f"  {sellers} sellers created in {elapsed:.1f} s")

        # Round-robin: the n-th earning of every seller, then the next.
        jobs: list[object] = [
            (seller_id, f"{seller_id}-o{n:03}") for n in range(earnings) for seller_id in seller_ids
        ]

        async def book(job: object) -> None:
            seller_id, order_id = job  # type: ignore[misc]
            response = await http.post(
                f"/v1/sellers/{seller_id}/earnings",
                json={"order_id": order_id, "amount": 10_000, "fee": 500},
            )
            if response.status_code != 201:
                raise RuntimeError(f"{order_id}: {response.status_code} {response.text}")

        elapsed, latencies = await run_concurrently(jobs, concurrency, book)
    return Rate(len(jobs), elapsed, latencies), seller_ids


async def bench_noop(address: str, concurrency: int, seconds: float) -> Rate:
    client = await Client.connect(address)
    prefix = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))
    # Until the child worker polls, then a warm-up round (untimed).
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=NOOP_QUEUE),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while not (await client.workflow_service.describe_task_queue(request)).pollers:
        await asyncio.sleep(0.2)

    async def one() -> None:
        await client.execute_workflow(
            NoopWorkflow.run, id=f"noop-{prefix}-{next(counter)}", task_queue=NOOP_QUEUE
        )

    await asyncio.gather(*(one() for _ in range(concurrency * 2)))

    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Rate(len(latencies), time.perf_counter() - started, latencies)


async def noop_worker(address: str) -> None:
    """The child process that runs the no-op workflow (``--noop-worker``)."""
    client = await Client.connect(address)
    async with Worker(client, task_queue=NOOP_QUEUE, workflows=[NoopWorkflow]):
        await asyncio.Event().wait()


def wait_until_posted(database_url: str, run: str, total: int, timeout: float) -> float:
    engine = create_db_engine(database_url, pool_size=1)
    started = time.monotonic()
    try:
        while True:
            with engine.connect() as conn:
                posted = conn.execute(
                    text(
                        "SELECT count(*) FROM earnings WHERE seller_id LIKE :run "
                        "AND status = 'posted'"
                    ),
                    {"run": f"{run}-%"},
                ).scalar_one()
            if posted >= total:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise SystemExit(f"only {posted} of {total} earnings posted in {timeout:.0f} s")
            time.sleep(0.5)
    finally:
        engine.dispose()


def posting_delays(database_url: str, run: str) -> tuple[list[float], int]:
    """Seconds from each hold's end to its posting, and the ledger transactions booked."""
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            delays = [
                float(d)
                for d in conn.execute(
                    text(
                        "SELECT extract(epoch FROM posted_at - hold_until) FROM earnings "
                        "WHERE seller_id LIKE :run"
                    ),
                    {"run": f"{run}-%"},
                ).scalars()
            ]
            booked = conn.execute(
                text("SELECT count(*) FROM ledger_transactions WHERE external_id LIKE :ext"),
                {"ext": f"earning:{run}-%"},
            ).scalar_one()
    finally:
        engine.dispose()
    return delays, int(booked)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sellers", type=int, default=1000)
    parser.add_argument("--earnings", type=int, default=10, help="per seller")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--hold", type=int, default=3, help="hold period, seconds")
    parser.add_argument("--noop-seconds", type=float, default=20.0)
    parser.add_argument("--noop-worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_worker:
        asyncio.run(noop_worker(args.noop_worker))
        return 0

    from payouts.settings import Settings
    from payouts.stack import Stack

    folder = Path(tempfile.mkdtemp(prefix="bench-holds-"))
    key = "sk_bench_" + secrets.token_urlsafe(24)
    os.environ.update(
        PAYOUTS_DATA_DIR=str(folder),
        PAYOUTS_API_PORT=str(free_port()),
        PAYOUTS_TEMPORAL_PORT=str(free_port()),
        PAYOUTS_TEMPORAL_UI_PORT=str(free_port()),
        PAYOUTS_ADMIN_API_KEY=key,
        PAYOUTS_DB_POOL_SIZE=str(max(20, args.concurrency)),
        PAYOUTS_LOG_LEVEL="WARNING",
    )
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS"):
        os.environ.pop(name, None)
    stack = Stack(Settings())
    noop: subprocess.Popen[bytes] | None = None
    total = args.sellers * args.earnings
    try:
        print(f"Starting the embedded stack in {folder} ...")
        started = time.monotonic()
        stack.start()
        print(
            f"  up in {time.monotonic() - started:.1f} s: API {stack.api_base_url}, "
            f"Temporal {stack.temporal_address}, {os.cpu_count()} CPUs"
        )
        run = f"b{uuid.uuid4().hex[:6]}"
        print(
            f"\n{args.sellers} sellers x {args.earnings} earnings, hold {args.hold} s, "
            f"{args.concurrency} concurrent clients"
        )
        rate, _ = asyncio.run(
            bench_earnings(
                stack.api_base_url,
                key,
                run,
                args.sellers,
                args.earnings,
                args.concurrency,
                args.hold,
            )
        )
        print(
            f"  {rate.count} earnings accepted in {rate.seconds:.1f} s: "
            f"{rate.per_second:.0f}/s (request p50 {percentile(rate.latencies, 0.5) * 1000:.0f} ms,"
            f" p99 {percentile(rate.latencies, 0.99) * 1000:.0f} ms)"
        )
        waited = wait_until_posted(stack.database_url, run, total, timeout=600)
        print(f"  all posted {waited:.1f} s after the last was accepted")
        delays, booked = posting_delays(stack.database_url, run)
        assert len(delays) == total and booked == total, (len(delays), booked, total)
        print(
            f"  posting delay after the hold's end: p50 {percentile(delays, 0.5) * 1000:.0f} ms,"
            f" p99 {percentile(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms,"
            f" mean {statistics.mean(delays) * 1000:.0f} ms"
        )
        print(f"  ledger: {booked} earning transactions for {total} orders (exactly once)")

        noop = subprocess.Popen(
            [sys.executable, __file__, "--noop-worker", stack.temporal_address],
            start_new_session=True,
        )
        print(
            f"\nTrivial workflow (start + complete, no activity), {args.concurrency} concurrent, "
            f"{args.noop_seconds:.0f} s, same Temporal server:"
        )
        ceiling = asyncio.run(
            bench_noop(stack.temporal_address, args.concurrency, args.noop_seconds)
        )
        print(
            f"  {ceiling.count} workflows: {ceiling.per_second:.0f}/s "
            f"(p50 {percentile(ceiling.latencies, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(ceiling.latencies, 0.99) * 1000:.0f} ms)"
        )

        print("\nSummary")
        print(f"  earnings accepted          {rate.per_second:8.0f} /s")
        print(f"  trivial workflows          {ceiling.per_second:8.0f} /s  (ceiling)")
        print(f"  ratio                      {rate.per_second / ceiling.per_second:8.2f}")
        print(
            f"  posting delay p50 / p99    {percentile(delays, 0.5) * 1000:5.0f} / "
            f"{percentile(delays, 0.99) * 1000:.0f} ms"
        )
    finally:
        if noop is not None:
            noop.terminate()
            noop.wait(timeout=10)
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
