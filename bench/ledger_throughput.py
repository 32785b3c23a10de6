"""Posted transactions per second through ledger_core, next to the same writes as plain SQL.

Both run in the same process against the same PostgreSQL server, side by side (each ledger_core
measurement is immediately followed by its plain-SQL twin, and the pair is repeated), with 1, 4
and 8 concurrent writers (threads, one connection each), for two workloads:

* uniform: each transfer moves money between two random accounts out of 1,000;
* hot: every transfer goes through one hot account (a platform clearing account, say).

ledger_core is measured two ways: ``write_transaction`` (the write is its own database
transaction: BEGIN, write and COMMIT in one round trip) and ``create_transaction`` inside the
caller's ``engine.begin()`` block (the caller commits: a second round trip).

Plain SQL is what a hand-written ledger would do with psycopg and no safety net: one INSERT of the
transaction, one INSERT of its entries, an UPDATE of each balance row (in id order), one commit,
on tables with the same columns and indexes but without constraints or triggers.

Usage: python bench/ledger_throughput.py [--seconds 4] [--rounds 2] [--writers 1,4,8]
DATABASE_URL selects a server; unset, an embedded PostgreSQL is started in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))

from common import percentile

from ledger_core import Direction, LedgerService, NewEntry, NewLedgerTransaction, NormalBalance
from ledger_core.ids import uuid7
from server.database import EmbeddedPostgres, create_db_engine, migrate

N_ACCOUNTS = 1000
# Measured side by side in each round: ledger_core's one-shot write (its own database
# transaction), ledger_core inside the caller's transaction, and the plain-SQL baseline.
IMPLS: list[tuple[str, bool | None]] = [
    ("write_txn", True),
    ("create_txn", False),
    ("plain SQL", None),
]

PLAIN_SCHEMA = """
DROP SCHEMA IF EXISTS bench_plain CASCADE;
CREATE SCHEMA bench_plain;
CREATE TABLE bench_plain.ledger_accounts
    (LIKE public.ledger_accounts INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench_plain.ledger_transactions
    (LIKE public.ledger_transactions INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench_plain.ledger_entries
    (LIKE public.ledger_entries INCLUDING DEFAULTS INCLUDING INDEXES);
"""


@dataclass
class Result:
    tps: float
    p50_ms: float
    p99_ms: float
    count: int


def run_writers(
    writers: int, seconds: float, make_writer: Callable[[int], Callable[[random.Random], None]]
) -> Result:
    latencies: list[list[float]] = [[] for _ in range(writers)]
    start = threading.Barrier(writers + 1)
    stop_at = [0.0]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            write = make_writer(i)
            rng = random.Random(i)
            write(rng)  # warm up: connection, prepared statements, caches
            start.wait()
            lat = latencies[i]
            while (now := time.perf_counter()) < stop_at[0]:
                write(rng)
                lat.append(time.perf_counter() - now)
        except BaseException as exc:  # surface any failure: a benchmark must not hide errors
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 3600
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return Result(
        tps=len(flat) / elapsed,
        p50_ms=percentile(flat, 0.50) * 1000,
        p99_ms=percentile(flat, 0.99) * 1000,
        count=len(flat),
    )


def pick(
    rng: random.Random, accounts: list[uuid.UUID], hot: uuid.UUID | None
) -> tuple[uuid.UUID, uuid.UUID]:
    if hot is not None:
        other = accounts[rng.randrange(len(accounts))]
        return (hot, other) if rng.random() < 0.5 else (other, hot)
    a, b = rng.sample(accounts, 2)
    return a, b


def ledger_writer(
    engine: Engine,
    ledger: LedgerService,
    ledger_id: uuid.UUID,
    accounts: list[uuid.UUID],
    hot: uuid.UUID | None,
    *,
    own_transaction: bool = True,
) -> Callable[[int], Callable[[random.Random], None]]:
    """Writes through ledger_core: ``write_transaction`` (a database transaction of its own, the
    fast path) or ``create_transaction`` inside the caller's ``engine.begin()`` block."""

    def make(_: int) -> Callable[[random.Random], None]:
        def write(rng: random.Random) -> None:
            debit, credit = pick(rng, accounts, hot)
            amount = rng.randint(1, 10_000)
            new = NewLedgerTransaction(
                ledger_id=ledger_id,
                entries=(
                    NewEntry(debit, Direction.DEBIT, amount),
                    NewEntry(credit, Direction.CREDIT, amount),
                ),
            )
            if own_transaction:
                ledger.write_transaction(engine, new)
            else:
                with engine.begin() as conn:
                    ledger.create_transaction(conn, new)

        return write

    return make


def plain_writer(
    url: str, ledger_id: uuid.UUID, accounts: list[uuid.UUID], hot: uuid.UUID | None
) -> Callable[[int], Callable[[random.Random], None]]:
    def make(_: int) -> Callable[[random.Random], None]:
        conn = psycopg.connect(url)

        def write(rng: random.Random) -> None:
            debit, credit = pick(rng, accounts, hot)
            amount = rng.randint(1, 10_000)
            now = datetime.now(UTC)
            txn_id = uuid7()
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO bench_plain.ledger_transactions (id, ledger_id, status, "
                    "effective_at, metadata, total_amount, created_at, updated_at, posted_at) "
                    "VALUES (%s, %s, 'posted', %s, '{}', %s, %s, %s, %s)",
                    (txn_id, ledger_id, now, amount, now, now, now),
                )
                cur.execute(
                    "INSERT INTO bench_plain.ledger_entries (id, transaction_id, ledger_id, "
                    "account_id, direction, amount, ordinal, created_at) VALUES "
                    "(%s, %s, %s, %s, 'debit', %s, 0, %s), (%s, %s, %s, %s, 'credit', %s, 1, %s)",
                    (
                        uuid7(),
                        txn_id,
                        ledger_id,
                        debit,
                        amount,
                        now,
                        uuid7(),
                        txn_id,
                        ledger_id,
                        credit,
                        amount,
                        now,
                    ),
                )
                for account, column in sorted(
                    [(debit, "posted_debits"), (credit, "posted_credits")]
                ):
                    cur.execute(  # column is one of two literals above
                        f"UPDATE bench_plain.ledger_accounts SET {column} = {column} + %s, "  # noqa: S608
                        "lock_version = lock_version + 1, updated_at = %s WHERE id = %s",
                        (amount, now, account),
                    )
            conn.commit()

        return write

    return make


def setup(
    url: str, engine: Engine, ledger: LedgerService
) -> tuple[uuid.UUID, list[uuid.UUID], uuid.UUID]:
    with engine.begin() as conn:
        led = ledger.create_ledger(conn, name=f"bench {uuid.uuid4()}", currency="USD")
        accounts = [
            ledger.create_account(
                conn,
                ledger_id=led.id,
                name=f"acct {i}",
                normal_balance=NormalBalance.CREDIT if i % 2 else NormalBalance.DEBIT,
            ).id
            for i in range(N_ACCOUNTS)
        ]
        hot = ledger.create_account(
            conn, ledger_id=led.id, name="hot clearing", normal_balance=NormalBalance.DEBIT
        ).id
    url = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(PLAIN_SCHEMA)
        pg.execute(
            "INSERT INTO bench_plain.ledger_accounts SELECT * FROM public.ledger_accounts "
            "WHERE ledger_id = %s",
            (led.id,),
        )
    # Warm both sides up so that tables have rows and fresh statistics (as a live ledger has);
    # plans cached while the tables were empty would otherwise skew the first runs.
    rng = random.Random(0)
    write_ledger = ledger_writer(engine, ledger, led.id, accounts, None)(0)
    write_plain = plain_writer(url, led.id, accounts, None)(0)
    for _ in range(2000):
        write_ledger(rng)
        write_plain(rng)
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("ANALYZE")
    return led.id, accounts, hot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measurement time per run")
    parser.add_argument("--rounds", type=int, default=2, help="side-by-side repetitions")
    parser.add_argument("--writers", default="1,4,8")
    args = parser.parse_args()
    writer_counts = [int(w) for w in args.writers.split(",")]

    server = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-pg-")) / "data")
        url = server.start()
    try:
        migrate(url)
        engine = create_db_engine(url, pool_size=max(writer_counts) + 2)
        ledger = LedgerService()
        ledger_id, accounts, hot = setup(url, engine, ledger)
        psycopg_url = url.replace("postgresql+psycopg://", "postgresql://")

        print(f"server: {url.split('@')[-1]}  cores: {os.cpu_count()}  seconds/run: {args.seconds}")
        print(f"{'workload':8} {'writers':>7} {'impl':>13} {'tx/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        summary: list[tuple[str, int, float, float]] = []
        for workload, hot_account in (("uniform", None), ("hot", hot)):
            for writers in writer_counts:
                results: dict[str, list[Result]] = {name: [] for name, _ in IMPLS}
                for _ in range(args.rounds):
                    for name, own in IMPLS:
                        writer = (
                            plain_writer(psycopg_url, ledger_id, accounts, hot_account)
                            if own is None
                            else ledger_writer(
                                engine,
                                ledger,
                                ledger_id,
                                accounts,
                                hot_account,
                                own_transaction=own,
                            )
                        )
                        results[name].append(run_writers(writers, args.seconds, writer))
                for name, _ in IMPLS:
                    print(
                        f"{workload:8} {writers:>7} {name:>13} "
                        f"{statistics.mean(r.tps for r in results[name]):>9.0f} "
                        f"{statistics.median(r.p50_ms for r in results[name]):>8.2f} "
                        f"{statistics.median(r.p99_ms for r in results[name]):>8.2f}"
                    )
                plain = results["plain SQL"]
                for name, own in IMPLS:
                    if own is None:
                        continue
                    ours = results[name]
                    ratio = statistics.mean(r.tps for r in ours) / statistics.mean(
                        r.tps for r in plain
                    )
                    # Per-round ratios show how much of the difference is noise.
                    per_round = [o.tps / p.tps for o, p in zip(ours, plain, strict=True)]
                    print(
                        f"{workload:8} {writers:>7} {'ratio':>13} {ratio:>9.2f}   {name} / plain "
                        f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)})"
                    )
                    summary.append((f"{workload} {name}", writers, ratio, min(per_round)))
        print()
        print("ledger_core / plain SQL throughput (targets: uniform@4 >= 0.67, hot >= 0.9)")
        for label, writers, ratio, worst in summary:
            print(f"  {label:24} {writers} writers: {ratio:.2f} (worst round {worst:.2f})")
        engine.dispose()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
