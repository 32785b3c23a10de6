"""The API at the speed of its framework: the platform's reads and an earning POST, next to a
minimal FastAPI app on the same PostgreSQL (``bench/minimal_app.py``), measured side by side in
one run with the same load generator (wrk, ``bench/wrk.py``) and ``--connections`` connections.

1. starts the embedded stack of ``make run`` (its production API server, request logs at INFO,
   metrics and the idempotency layer on), and the minimal app with as many worker processes;
2. fills it through the domain: a seller with ``--history`` earnings (most posted), refunds,
   disputes and paid payouts, and ``--sellers`` more for the POSTs, each with a first earning
   whose wake its hold workflow has answered (the POSTs are measured in the steady state);
   then ANALYZE;
3. measures, ``--seconds`` each after ``WARM_UP`` seconds of the same load not counted: the
   minimal app's one ``SELECT`` and one ``INSERT``; then ``GET /v1/sellers/{id}/balances``,
   ``GET /v1/ledger_accounts/{id}``, ``GET /v1/sellers/{id}/earnings`` (a page) of that
   seller, and ``POST /v1/sellers/{id}/earnings`` over the sellers;
4. prints req/s, p50 and p99 of each and the ratios to the minimal app, with the targets: every
   read >= 0.7 of its read rate with p99 below 2x its p99, the POST >= 0.5 of its insert rate.
   The minimal app runs in both its styles (``def`` and ``async`` endpoints,
   ``bench/minimal_app.py``): the yardstick is the higher rate and the shorter p99 of the two.

Usage: python bench/api.py [--seconds 15] [--connections 50] [--history 5000] [--sellers 200]
                           [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))

import httpx
from common import analyze, create_sellers, embedded_stack, first_earnings
from wrk import WrkResult, lua_string, run_wrk

from marketplace import EarningRequest, Marketplace, Payouts, Refunds
from server.database import create_db_engine

WARM_UP = 3.0  # seconds of load before each measurement, not counted
STYLES = ("def", "async")  # bench/minimal_app.py's two ways of writing its endpoints


def fill(url: str, seller: str, history: int) -> str:
    """A seller with a history: earnings (most posted), refunds, disputes, paid payouts.
    Returns its ledger account id."""
    market = Marketplace()
    payouts = Payouts(market)
    refunds = Refunds(market)
    engine = create_db_engine(url, pool_size=2)
    with engine.begin() as conn:
        payouts.set_payout_account(conn, seller, "000123456789", "110000000", "Bench")
    for start in range(0, history, 1000):
        with engine.begin() as conn:
            market.book_earnings(
                conn,
                [
                    EarningRequest(seller, f"h-{n}", 10_000, 500)
                    for n in range(start, min(start + 1000, history))
                ],
            )
    while True:  # post nine in ten (the hold is 0 s): the last tenth stays on hold
        with engine.begin() as conn:
            done = market.holds.settle_due(conn, seller, at=datetime.now(UTC), window=timedelta(0))
        if not done.more:
            break
    with engine.begin() as conn:
        for n in range(0, history // 10):
            refunds.refund_earning(
                conn, refund_id=f"r-{n}", seller_id=seller, order_id=f"h-{n}", amount=1_000
            )
        for n in range(history // 50):
            market.open_dispute(
                conn,
                dispute_id=f"d-{seller}-{n}",
                seller_id=seller,
                order_id=f"h-{n}",
                amount=500,
                deadline=datetime.now(UTC) + timedelta(days=30),
            )
        for n in range(max(1, history // 500)):
            payout = payouts.reserve_payout(
                conn, payout_id=f"p-{seller}-{n}", seller_id=seller, amount=1_000
            )
            payouts.begin_submission(conn, payout.id)
            payouts.mark_submitted(conn, payout.id, f"rail-{n}")
            payouts.mark_paid(conn, payout.id)
        # The last tenth of the history on hold, booked now.
        market.book_earnings(
            conn, [EarningRequest(seller, f"held-{n}", 10_000, 500) for n in range(history // 10)]
        )
        account_id, _ = market.seller_account(conn, seller)
    engine.dispose()
    return str(account_id)


def start_minimal(
    url: str, key: str, workers: int, log: Path, style: str
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    out = log.open("ab")
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("minimal_app.py")),
                "--listen-fd",
                str(sock.fileno()),
                "--database-url",
                url,
                "--key",
                key,
                "--style",
                style,
            ],
            pass_fds=[sock.fileno()],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        for _ in range(workers)
    ]
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/docs", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the minimal app did not start")
        time.sleep(0.3)
    sock.close()
    return base, processes


def get_script(key: str, path: str) -> str:
    return f"""
local headers = {{["Authorization"] = {lua_string("Bearer " + key)}}}
function request()
  return wrk.format("GET", {lua_string(path)}, headers)
end
"""


def post_script(key: str, path: str, body: str) -> str:
    """``body`` is Lua code for the body string; it may use ``counter`` and ``tid``."""
    return f"""
local headers = {{["Authorization"] = {lua_string("Bearer " + key)},
                 ["Content-Type"] = "application/json"}}
local counter = 0
function request()
  counter = counter + 1
  return wrk.format("POST", {lua_string(path)}, headers, {body})
end
"""


def earnings_post_script(key: str, run: str, sellers: list[str]) -> str:
    listed = ", ".join(lua_string(s) for s in sellers)
    return f"""
local sellers = {{{listed}}}
local headers = {{["Authorization"] = {lua_string("Bearer " + key)},
                 ["Content-Type"] = "application/json"}}
local counter = 0
function request()
  counter = counter + 1
  local seller = sellers[((counter * 7 + tid) % #sellers) + 1]
  local body = '{{"order_id":"{run}-' .. tid .. '-' .. counter .. '","amount":10000,"fee":500}}'
  return wrk.format("POST", "/v1/sellers/" .. seller .. "/earnings", headers, body)
end
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--history", type=int, default=5000, help="earnings of the read seller")
    parser.add_argument("--sellers", type=int, default=200, help="sellers the POSTs go to")
    parser.add_argument("--rounds", type=int, default=2, help="each figure is their median")
    args = parser.parse_args()
    workers = len(os.sched_getaffinity(0))
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    api_log = log_dir / f"bench-api-{uuid.uuid4().hex[:6]}.log"
    # The stack's processes inherit stderr: their request logs (one JSON line per request, at
    # INFO, as in production) go to a file, not to this terminal.
    saved = os.dup(2)
    os.dup2(os.open(api_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
    try:
        with embedded_stack(PAYOUTS_LOG_LEVEL="INFO", PAYOUTS_API_WORKERS=str(workers)) as (
            stack,
            key,
        ):
            return measure(args, stack, key, workers, api_log)
    finally:
        os.dup2(saved, 2)


def measure(args: argparse.Namespace, stack: object, key: str, workers: int, api_log: Path) -> int:
    url: str = stack.database_url  # type: ignore[attr-defined]
    api: str = stack.api_base_url  # type: ignore[attr-defined]
    run = f"a{uuid.uuid4().hex[:5]}"
    reader = f"{run}-reader"
    sellers = [f"{run}-s{n:04}" for n in range(args.sellers)]
    create_sellers(api, key, [reader], 0)
    create_sellers(api, key, sellers, 3600)
    print(f"  filling: a seller with {args.history} earnings and their refunds, disputes, payouts")
    started = time.monotonic()
    account = fill(url, reader, args.history)
    first_earnings(url, sellers)
    analyze(url)
    print(f"  filled in {time.monotonic() - started:.0f} s; API logs in {api_log}")
    print(
        f"\n{args.connections} connections, {args.seconds:.0f} s each, {args.rounds} rounds (the "
        f"minimal app's styles and the platform's requests in turn in each); the platform's API "
        f"and the minimal app (one style at a time, so that only one holds database connections)"
        f" on uvicorn (uvloop, httptools), {workers} worker processes each"
    )
    results: dict[str, list[WrkResult]] = {}

    def measure_one(name: str, base: str, script: Callable[[str], str], tag: str) -> None:
        # Untimed first: connections opened, code paths and caches warm in every process.
        run_wrk(base, script(f"w{tag}"), connections=args.connections, seconds=WARM_UP)
        result = run_wrk(
            base, script(f"m{tag}"), connections=args.connections, seconds=args.seconds
        )
        results.setdefault(name, []).append(result)
        print(f"  {name:21} {result.line()}")

    # (name, the script of a run: each run's POSTs book orders of their own)
    plan: list[tuple[str, Callable[[str], str]]] = [
        ("seller balances", lambda _: get_script(key, f"/v1/sellers/{reader}/balances")),
        ("ledger account", lambda _: get_script(key, f"/v1/ledger_accounts/{account}")),
        ("earnings page", lambda _: get_script(key, f"/v1/sellers/{reader}/earnings?per_page=25")),
        ("earning POST", lambda tag: earnings_post_script(key, run + tag, sellers)),
    ]
    for round_ in range(1, args.rounds + 1):
        print(f" round {round_}")
        for style in STYLES:
            minimal, processes = start_minimal(url, key, workers, api_log, style)
            try:
                measure_one(
                    f"minimal SELECT {style}",
                    minimal,
                    lambda _: get_script(key, f"/read/{account}"),
                    str(round_),
                )
                measure_one(
                    f"minimal INSERT {style}",
                    minimal,
                    lambda _: post_script(key, "/write", "'{\"n\":' .. counter .. '}'"),
                    str(round_),
                )
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=10)
        for name, script in plan:
            measure_one(name, api, script, str(round_))

    # Each figure: the median of its rounds. The yardstick is the better minimal app for each:
    # the higher rate of the two styles, and the shorter p99.
    def rate(name: str) -> float:
        return statistics.median(r.rate for r in results[name])

    def p99(name: str) -> float:
        return statistics.median(r.p99_ms for r in results[name])

    read_rate = max(rate(f"minimal SELECT {style}") for style in STYLES)
    write_rate = max(rate(f"minimal INSERT {style}") for style in STYLES)
    read_p99 = min(p99(f"minimal SELECT {style}") for style in STYLES)
    print(
        f"\nSummary (medians of {args.rounds} rounds; ratios to the minimal app of this run: its "
        "higher rate of the two styles, its shorter p99)"
    )
    print(f"  {'request':21} {'req/s':>8} {'p99 ms':>8}   ratio   target")
    ok = True
    for name in ("seller balances", "ledger account", "earnings page", "earning POST"):
        ratio = rate(name) / (write_rate if name == "earning POST" else read_rate)
        goal = 0.5 if name == "earning POST" else 0.7
        met = ratio >= goal and (name == "earning POST" or p99(name) < 2 * read_p99)
        failed = sum(
            r.statuses["s5xx"] + r.statuses["s503"] + r.statuses["s4xx"] + r.errors
            for r in results[name]
        )
        met = met and failed == 0
        ok = ok and met
        extra = "" if name == "earning POST" else f", p99 < {2 * read_p99:.0f} ms"
        print(
            f"  {name:21} {rate(name):8.0f} {p99(name):8.1f}   {ratio:5.2f}   "
            f">= {goal}{extra}  {'met' if met else 'MISSED'}"
        )
    for style in STYLES:
        for name in (f"minimal SELECT {style}", f"minimal INSERT {style}"):
            print(f"  {name:21} {rate(name):8.0f} {p99(name):8.1f}")
    cpu = sum(r.cpu_seconds for rs in results.values() for r in rs)
    wall = sum(r.seconds for rs in results.values() for r in rs)
    print(f"\n  wrk used {cpu:.1f} s of CPU in {wall:.0f} s ({cpu / wall * 100:.0f}% of one core)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
