"""What the benchmarks share: the embedded stack of ``make run`` on free ports in a temporary
folder, sellers created through the API, percentiles."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def bench_key() -> str:
    """An admin API key for a bench's own stack (registered through PAYOUTS_ADMIN_API_KEY)."""
    return "sk_bench_" + secrets.token_urlsafe(24)


def stack_environment(
    folder: Path, key: str, *, unset: Sequence[str] = (), **settings: str
) -> None:
    """Point the next ``Stack(Settings())`` at a stack of the bench's own: ``folder``, free ports,
    ``key`` as its admin key, no worker metrics endpoint, warnings only; ``settings`` on top.
    DATABASE_URL, TEMPORAL_ADDRESS and the ``unset`` variables are removed."""
    os.environ.update(
        {
            "PAYOUTS_DATA_DIR": str(folder),
            "PAYOUTS_API_PORT": str(free_port()),
            "PAYOUTS_TEMPORAL_PORT": str(free_port()),
            "PAYOUTS_TEMPORAL_UI_PORT": str(free_port()),
            "PAYOUTS_WORKER_METRICS_PORT": "0",
            "PAYOUTS_ADMIN_API_KEY": key,
            "PAYOUTS_LOG_LEVEL": "WARNING",
            **settings,
        }
    )
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", *unset):
        os.environ.pop(name, None)


@contextmanager
def embedded_stack(**settings: str) -> Iterator[tuple[Any, str]]:
    from server.settings import Settings
    from server.stack import Stack

    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    key = bench_key()
    stack_environment(folder, key, **settings)
    stack = Stack(Settings())
    try:
        print(f"Starting the embedded stack in {folder} ...")
        started = time.monotonic()
        stack.start()
        print(
            f"  up in {time.monotonic() - started:.1f} s: API {stack.api_base_url}, "
            f"Temporal {stack.temporal_address}, {len(os.sched_getaffinity(0))} CPUs"
        )
        yield stack, key
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)


def analyze(database_url: str) -> None:
    """ANALYZE the platform's tables once they are filled, before anything is measured: a new
    database has no statistics until autovacuum gets to it (up to a minute later), and plans
    made without them (seen: the ledger baseline at a fifth of its speed) would make the figures
    depend on when autovacuum ran."""
    from sqlalchemy import text

    from server.database import create_db_engine

    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    finally:
        engine.dispose()


def first_earnings(url: str, sellers: Sequence[str], timeout: float = 120) -> None:
    """One earning per seller, and the wake it asks of each seller's hold workflow answered:
    a seller's first earning starts its workflow (the only intake that does); the POSTs are
    measured in the steady state after that."""
    from sqlalchemy import text

    from marketplace import EarningRequest, Marketplace
    from server.database import create_db_engine

    market = Marketplace()
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            market.book_earnings(conn, [EarningRequest(s, "first", 10_000, 500) for s in sellers])
        deadline = time.monotonic() + timeout
        with engine.connect() as conn:
            while conn.execute(
                text(
                    "SELECT count(*) FROM seller_hold_clocks"
                    " WHERE seller_id = ANY(:s) AND wake_requested_on IS NOT NULL"
                ),
                {"s": list(sellers)},
            ).scalar_one():
                conn.rollback()
                if time.monotonic() > deadline:
                    raise SystemExit("the sellers' hold workflows did not answer their first wake")
                time.sleep(0.5)
    finally:
        engine.dispose()


def create_sellers(api: str, key: str, ids: Sequence[str], hold: float) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http:
            limit = asyncio.Semaphore(16)

            async def one(seller: str) -> None:
                async with limit:
                    r = await http.post(
                        "/v1/sellers",
                        json={
                            "id": seller,
                            "name": f"Bench {seller}",
                            "currency": "USD",
                            "hold_period": f"PT{hold:g}S",
                        },
                    )
                    assert r.status_code == 201, r.text

            await asyncio.gather(*(one(s) for s in ids))

    asyncio.run(go())
