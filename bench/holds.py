"""Earnings at ledger speed: order intake over HTTP and the release of holds, on the embedded
stack, next to ledger_core's own write rate measured in the same run.

The stack is the one ``make run`` starts (``server.stack.Stack``): an embedded PostgreSQL and a
Temporal dev server in a temporary folder, the worker and the API (its production server) as
child processes, all on free ports. The load generator is wrk (``bench/wrk.py``; its own CPU time
is printed with each figure, to show it is not the limit).

Intake (default):

0. each seller's first earning, booked directly and its hold workflow's first wake answered
   (the first earning of a seller is the one intake that starts a workflow);
1. **ledger baseline**: ``LedgerService.write_transaction`` from 4 processes for ``--seconds``,
   each a pending transaction shaped like an earning (clearing debit, a seller's credit over
   ``--sellers`` accounts, a fee's credit), straight to the stack's PostgreSQL;
2. **spread**: ``POST /v1/sellers/{id}/earnings`` from ``--concurrency`` connections, round-robin
   over ``--sellers`` sellers (holds of ``--hold`` seconds), for ``--seconds``;
3. **one seller**: the same, every connection on one seller;
4. **batch**: ``POST /v1/earnings/batch`` of ``--batch`` earnings each, from 4 connections;
5. waits until every hold has posted; checks that each accepted earning is one ledger
   transaction, posted once; reports the delay from each hold's end to its posting;
6. counts, from the hold workflows' histories, the workflow starts and signals that intake
   caused, per earning.

It prints each figure, then the ratios to the ledger baseline and the issue's targets (earnings
over HTTP >= 0.25 of the ledger rate with p99 < 150 ms, spread and on one seller with no 5xx;
the batch >= 0.8; <= 0.05 intake-caused workflow tasks per earning beyond each seller's first).

Releases (``--releases``): ``--release-sellers`` sellers with ``--release-holds`` open holds
each plus one seller with ``--big-seller``, booked through the batch endpoint, with the hold
workflows' release window set to ``--window`` seconds; waits until every hold has posted and
reports the delay from each hold's end to its posting (target: p99 <= window + 1 s) and the size
of the big seller's workflow histories (target: under 1 MB each).

Usage: python bench/holds.py [--sellers 200] [--seconds 20] [--concurrency 32] [--hold 5]
                             [--window S]
       python bench/holds.py --releases [--release-sellers 1000] [--release-holds 100]
                             [--big-seller 50000] [--window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The bench folder last, so its modules never shadow the platform's packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))

import httpx
from common import analyze, create_sellers, embedded_stack, first_earnings, percentile
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from wrk import WrkResult, lua_string, run_wrk

from ledger_core import (
    Direction,
    LedgerService,
    NewEntry,
    NewLedgerTransaction,
    NormalBalance,
    TransactionStatus,
)
from server.database import create_db_engine
from server.settings import Settings

# --------------------------------------------------------------------------- ledger baseline


WARM_UP = 5.0


def _ledger_writer(
    url: str, spec: dict[str, Any], seconds: float, ready: Any, go: Any, out: Any
) -> None:
    engine = create_db_engine(url, pool_size=1)
    ledger = LedgerService()
    sellers = [uuid.UUID(a) for a in spec["sellers"]]
    clearing, fees, ledger_id = (
        uuid.UUID(spec["clearing"]),
        uuid.UUID(spec["fees"]),
        uuid.UUID(spec["ledger"]),
    )
    tag = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    n = 0
    ready.release()
    go.wait()  # every writer starts together, once all have imported and connected
    warm = time.perf_counter() + WARM_UP  # untimed: connections, prepared writes, caches
    deadline = warm + seconds
    while time.perf_counter() < deadline:
        n += 1
        new = NewLedgerTransaction(
            ledger_id=ledger_id,
            entries=(
                NewEntry(clearing, Direction.DEBIT, 10_000),
                NewEntry(sellers[n % len(sellers)], Direction.CREDIT, 9_500),
                NewEntry(fees, Direction.CREDIT, 500),
            ),
            status=TransactionStatus.PENDING,
            external_id=f"bench:{tag}:{n}",
        )
        started = time.perf_counter()
        ledger.write_transaction(engine, new)
        if started >= warm:
            latencies.append(time.perf_counter() - started)
    engine.dispose()
    out.put(latencies)


def ledger_baseline(url: str, sellers: int, seconds: float, processes: int = 4) -> dict[str, float]:
    engine = create_db_engine(url, pool_size=1)
    ledger = LedgerService()
    with engine.begin() as conn:
        book = ledger.create_ledger(conn, name="bench baseline", currency="USD")

        def account(name: str, normal: NormalBalance) -> str:
            return str(
                ledger.create_account(conn, ledger_id=book.id, name=name, normal_balance=normal).id
            )

        spec = {
            "ledger": str(book.id),
            "clearing": account("clearing", NormalBalance.DEBIT),
            "fees": account("fees", NormalBalance.CREDIT),
            "sellers": [account(f"seller {i}", NormalBalance.CREDIT) for i in range(sellers)],
        }
    engine.dispose()
    analyze(url)  # the sellers and these accounts are in: plans with statistics from here on
    context = multiprocessing.get_context("spawn")
    out, ready, go = context.Queue(), context.Semaphore(0), context.Event()
    workers = [
        context.Process(target=_ledger_writer, args=(url, spec, seconds, ready, go, out))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    for _ in workers:
        ready.acquire(timeout=120)
    go.set()
    latencies: list[float] = []
    for _ in workers:
        latencies += out.get(timeout=WARM_UP + seconds + 120)
    for w in workers:
        w.join()
    return {
        "rate": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "count": len(latencies),
    }


# --------------------------------------------------------------------------- wrk scripts


def _lua_head(key: str, run: str, sellers: Sequence[str]) -> str:
    listed = ", ".join(lua_string(s) for s in sellers)
    return f"""
local sellers = {{{listed}}}
local run = {lua_string(run)}
local headers = {{["Authorization"] = {lua_string("Bearer " + key)},
                 ["Content-Type"] = "application/json"}}
local counter = 0
"""


def earnings_script(key: str, run: str, sellers: Sequence[str]) -> str:
    return (
        _lua_head(key, run, sellers)
        + """
function request()
  counter = counter + 1
  local seller = sellers[((counter * 7 + tid) % #sellers) + 1]
  local body = '{"order_id":"' .. run .. '-' .. tid .. '-' .. counter ..
               '","amount":10000,"fee":500}'
  return wrk.format("POST", "/v1/sellers/" .. seller .. "/earnings", headers, body)
end
"""
    )


def batch_script(key: str, run: str, sellers: Sequence[str], size: int) -> str:
    return (
        _lua_head(key, run, sellers)
        + f"""
local size = {size}
function request()
  counter = counter + 1
  local items = {{}}
  for i = 1, size do
    local seller = sellers[((counter * size + i + tid) % #sellers) + 1]
    items[i] = '{{"seller_id":"' .. seller .. '","order_id":"' .. run .. '-' .. tid .. '-' ..
               counter .. '-' .. i .. '","amount":10000,"fee":500}}'
  end
  local body = '{{"earnings":[' .. table.concat(items, ",") .. ']}}'
  return wrk.format("POST", "/v1/earnings/batch", headers, body)
end
"""
    )


# --------------------------------------------------------------------------- checks


def booked(url: str, like: str) -> dict[str, Any]:
    """Earnings of the run: how many, how many posted, and one posted ledger transaction each."""
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    """
SELECT count(*) AS earnings,
       count(*) FILTER (WHERE e.status = 'posted') AS posted,
       count(*) FILTER (WHERE t.status = 'posted'
                          AND t.external_id = 'earning:' || e.seller_id || '/' || e.order_id)
           AS posted_once
  FROM earnings e JOIN ledger_transactions t ON t.id = e.ledger_transaction_id
 WHERE e.seller_id LIKE :like
"""
                ),
                {"like": like},
            ).one()
            duplicates = conn.execute(
                text(
                    """
SELECT count(*) FROM (SELECT external_id FROM ledger_transactions WHERE external_id LIKE :ext
                       GROUP BY external_id HAVING count(*) > 1) d
"""
                ),
                {"ext": f"earning:{like}"},
            ).scalar_one()
    finally:
        engine.dispose()
    return {**row._asdict(), "duplicates": duplicates}


def wait_until_posted(url: str, like: str, timeout: float) -> float:
    started = time.monotonic()
    while True:
        counts = booked(url, like)
        if counts["posted"] == counts["earnings"]:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {counts['posted']} of {counts['earnings']} posted")
        time.sleep(1)


def posting_delays(url: str, like: str) -> list[float]:
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return [
                float(d)
                for d in conn.execute(
                    text(
                        "SELECT extract(epoch FROM posted_at - hold_until) FROM earnings "
                        "WHERE seller_id LIKE :like"
                    ),
                    {"like": like},
                ).scalars()
            ]
    finally:
        engine.dispose()


async def workflow_histories(address: str, prefix: str) -> dict[str, list[Any]]:
    """Every run of the hold workflows of sellers whose id starts with ``prefix``: seller ->
    [history, ...]."""
    client = await Client.connect(address)
    runs: dict[str, list[Any]] = {}
    query = f"WorkflowType = 'SellerHoldWorkflow' AND SellerId STARTS_WITH '{prefix}'"
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        runs.setdefault(execution.id.removeprefix("seller-holds/"), []).append(
            await handle.fetch_history()
        )
    return runs


def intake_wakes(address: str, prefix: str) -> dict[str, int]:
    histories = asyncio.run(workflow_histories(address, prefix))
    starts = signals = tasks = 0
    for runs in histories.values():
        for history in runs:
            for event in history.events:
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                    signals += 1
                elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    tasks += 1
            first = history.events[0].workflow_execution_started_event_attributes
            if not first.continued_execution_run_id:  # a start, not a continue-as-new
                starts += 1
    return {"sellers": len(histories), "starts": starts, "signals": signals, "tasks": tasks}


# --------------------------------------------------------------------------- the runs


def intake(args: argparse.Namespace) -> int:
    # The release window of the hold workflows that post the holds meanwhile (their turns share
    # the machine with intake): the embedded default unless --window says otherwise.
    window = args.window if args.window is not None else Settings().payouts_hold_release_window
    with embedded_stack(PAYOUTS_HOLD_RELEASE_WINDOW=str(window)) as (stack, key):
        run = f"b{uuid.uuid4().hex[:5]}"
        sellers = [f"{run}-s{n:04}" for n in range(args.sellers)]
        one = f"{run}-one"
        create_sellers(stack.api_base_url, key, [*sellers, one], args.hold)
        # Each seller's first earning starts its hold workflow (the only intake that must):
        # booked and answered before anything is measured.
        first_earnings(stack.database_url, [*sellers, one])
        print(f"  {len(sellers) + 1} sellers, holds of {args.hold:g} s, each with a first earning")

        print(f"\nledger_core write_transaction, 4 processes, {args.seconds:.0f} s:")
        ledger = ledger_baseline(stack.database_url, args.sellers, args.seconds)
        print(
            f"  {ledger['rate']:8.0f} txn/s  p50 {ledger['p50_ms']:6.1f} ms  "
            f"p99 {ledger['p99_ms']:6.1f} ms  ({ledger['count']} transactions)"
        )

        results: dict[str, WrkResult] = {}
        print(f"\nPOST /v1/sellers/{{id}}/earnings, {args.concurrency} connections:")
        results["spread"] = run_wrk(
            stack.api_base_url,
            earnings_script(key, f"{run}x", sellers),
            connections=args.concurrency,
            seconds=args.seconds,
        )
        print(f"  over {len(sellers)} sellers: {results['spread'].line('earnings')}")
        results["one"] = run_wrk(
            stack.api_base_url,
            earnings_script(key, f"{run}y", [one]),
            connections=args.concurrency,
            seconds=args.seconds,
        )
        print(f"  on one seller:    {results['one'].line('earnings')}")
        print(f"\nPOST /v1/earnings/batch of {args.batch}, 4 connections:")
        results["batch"] = run_wrk(
            stack.api_base_url,
            batch_script(key, f"{run}z", sellers, args.batch),
            connections=4,
            seconds=args.seconds,
            timeout=30,
        )
        print(f"  {results['batch'].line('earnings', per=args.batch)}")
        batch = results["batch"]
        print(f"  {batch.ok * args.batch / batch.seconds:8.0f} earnings/s answered 2xx")

        like = f"{run}-%"
        waited = wait_until_posted(stack.database_url, like, timeout=600)
        counts = booked(stack.database_url, like)
        delays = posting_delays(stack.database_url, like)
        accepted = sum(r.ok * (args.batch if name == "batch" else 1) for name, r in results.items())
        print(
            f"\n{counts['earnings']} earnings booked ({accepted} answered 2xx; the rest were in "
            f"flight when wrk stopped), all posted {waited:.0f} s after the load; "
            f"{counts['posted_once']} posted once, {counts['duplicates']} booked twice"
        )
        print(
            f"  posting delay after the hold's end: p50 {percentile(delays, 0.5):.2f} s, "
            f"p99 {percentile(delays, 0.99):.2f} s, max {max(delays):.2f} s "
            f"(release window {window:g} s)"
        )
        wakes = intake_wakes(stack.temporal_address, run)
        earnings = counts["earnings"]
        beyond_first = (wakes["starts"] + wakes["signals"] - wakes["sellers"]) / earnings
        print(
            f"  hold workflows: {wakes['sellers']} sellers, {wakes['starts']} starts, "
            f"{wakes['signals']} signals, {wakes['tasks']} workflow tasks in all"
        )

        rate = ledger["rate"]
        once = counts["posted_once"] == earnings and counts["duplicates"] == 0
        checks: list[tuple[str, float | bool, str, bool]] = []
        for name, result in (("over sellers", results["spread"]), ("one seller", results["one"])):
            failed = result.statuses["s5xx"] + result.statuses["s503"]
            checks += [
                (
                    f"HTTP {name} / ledger",
                    result.rate / rate,
                    ">= 0.25",
                    result.rate / rate >= 0.25,
                ),
                ("  request p99 (ms)", result.p99_ms, "< 150", result.p99_ms < 150),
                ("  5xx answers", float(failed), "0", failed == 0),
            ]
        # Earnings answered 2xx: a batch answered 503 (past the deadline) is not counted, even if
        # its work committed after the answer.
        batched = results["batch"].ok * args.batch / results["batch"].seconds / rate
        intake_wakes_per = (wakes["starts"] + wakes["signals"]) / earnings
        checks += [
            ("batch earnings / ledger", batched, ">= 0.8", batched >= 0.8),
            ("intake wakes per earning", intake_wakes_per, "", True),
            ("  beyond each seller's first", beyond_first, "<= 0.05", beyond_first <= 0.05),
            ("booked exactly once", once, "True", once),
        ]
        print("\nSummary (ratios to the ledger baseline of this run)")
        for name, value, target, met in checks:
            shown = f"{value!s:>10}" if isinstance(value, bool) else f"{value:10.3f}"
            print(f"  {name:32} {shown}   target {target:8} {'met' if met else 'MISSED'}")
        return 0 if once else 1


def releases(args: argparse.Namespace) -> int:
    window = args.window if args.window is not None else 60.0
    with embedded_stack(PAYOUTS_HOLD_RELEASE_WINDOW=str(window)) as (stack, key):
        run = f"r{uuid.uuid4().hex[:5]}"
        sellers = [f"{run}-s{n:04}" for n in range(args.release_sellers)]
        big = f"{run}-big"
        total = len(sellers) * args.release_holds + args.big_seller
        # Long enough for every booking to be in before the first hold ends.
        hold = max(60.0, total / 1500)
        create_sellers(stack.api_base_url, key, [*sellers, big], hold)
        print(
            f"  {len(sellers)} sellers x {args.release_holds} holds + one seller with "
            f"{args.big_seller}; holds of {hold:.0f} s, release window {window:g} s"
        )
        items = [(s, f"{s}-o{n}") for n in range(args.release_holds) for s in sellers]
        items += [(big, f"{big}-o{n}") for n in range(args.big_seller)]
        started = time.monotonic()

        async def book() -> None:
            async with httpx.AsyncClient(
                base_url=stack.api_base_url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            ) as http:
                limit = asyncio.Semaphore(4)

                async def one(chunk: list[tuple[str, str]]) -> None:
                    body = {
                        "earnings": [
                            {"seller_id": s, "order_id": o, "amount": 10_000, "fee": 500}
                            for s, o in chunk
                        ]
                    }
                    # As a client does: a 503 (busy: answered within the deadline) is retried
                    # after its Retry-After with the same key.
                    key = {"Idempotency-Key": f"{chunk[0][1]}-batch"}
                    async with limit:
                        while True:
                            r = await http.post("/v1/earnings/batch", json=body, headers=key)
                            if r.status_code != 503:
                                break
                            retried[0] += 1
                            await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                        assert r.status_code == 200, r.text
                        assert r.json()["created"] == len(chunk), r.text

                await asyncio.gather(
                    *(one(items[i : i + 1000]) for i in range(0, len(items), 1000))
                )

        retried = [0]
        asyncio.run(book())
        took = time.monotonic() - started
        print(
            f"  {len(items)} holds booked in {took:.0f} s ({len(items) / took:.0f}/s, "
            f"{retried[0]} batch requests answered 503 and retried)"
        )
        like = f"{run}-%"
        waited = wait_until_posted(stack.database_url, like, timeout=3600)
        print(f"  all posted {waited:.0f} s after the last booking")
        delays = posting_delays(stack.database_url, like)
        counts = booked(stack.database_url, like)
        histories = asyncio.run(workflow_histories(stack.temporal_address, big))[big]
        sizes = [len(h.to_json().encode()) for h in histories]
        p99 = percentile(delays, 0.99)
        print(
            f"\nposting delay after the hold's end: p50 {percentile(delays, 0.5):.2f} s, "
            f"p99 {p99:.2f} s, max {max(delays):.2f} s"
        )
        print(
            f"big seller's workflow: {len(histories)} runs, largest history "
            f"{max(sizes) / 1024:.0f} KB ({sum(len(h.events) for h in histories)} events)"
        )
        print(
            f"{counts['posted_once']} of {counts['earnings']} posted once, "
            f"{counts['duplicates']} booked twice"
        )
        largest = max(sizes) / 1024
        print("\nSummary")
        bound = window + 1
        print(f"  p99 delay (s)         {p99:8.2f}  target <= {bound:g}  {_met(p99 <= bound)}")
        print(f"  largest history (KB)  {largest:8.0f}  target < 1024  {_met(largest < 1024)}")
        return 0 if counts["posted_once"] == counts["earnings"] == total else 1


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sellers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections")
    parser.add_argument("--hold", type=float, default=5.0, help="hold period, seconds")
    parser.add_argument("--batch", type=int, default=1000, help="earnings per batch request")
    parser.add_argument("--releases", action="store_true", help="the release benchmark")
    parser.add_argument("--release-sellers", type=int, default=1000)
    parser.add_argument("--release-holds", type=int, default=100, help="per seller")
    parser.add_argument("--big-seller", type=int, default=50_000, help="holds of one seller")
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="the hold workflows' release window, seconds (intake: the embedded default; "
        "releases: 60)",
    )
    args = parser.parse_args()
    return releases(args) if args.releases else intake(args)


if __name__ == "__main__":
    sys.exit(main())
