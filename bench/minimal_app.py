"""The yardstick of ``bench/api.py``: a minimal FastAPI app on the same PostgreSQL, served the way
the platform's API is (uvicorn with uvloop and httptools, the same number of worker processes),
doing what any API of this kind must do at the least: check a bearer key and run one statement.

* ``GET /read/{account_id}``: one ``SELECT`` of a ledger account's balance row;
* ``POST /write``: one ``INSERT`` of the JSON body into a table of its own.

Two styles (``--style``): ``def`` endpoints (the plain way; FastAPI takes a thread-pool hop for
the endpoint and one for its response: the faster of the two here, with a tail of seconds at 50
connections) and ``async`` endpoints with one thread-pool hop for the database (as the
platform's API runs; slower here, with a tail of tens of ms). ``bench/api.py`` measures both and
holds the platform to the better of each: the faster rate and the shorter tail.

The key check is a constant-time comparison of the key's SHA-256 with the configured one (the
platform's API authenticates from an in-process cache, which costs about the same). Run as
``python bench/minimal_app.py --listen-fd FD --database-url URL --key KEY`` (``bench/api.py``
starts it); each process opens a pool of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import socket
import uuid
from typing import Any

import uvicorn
from fastapi import Body, Depends, FastAPI, HTTPException, Request
from sqlalchemy import create_engine, text
from starlette.concurrency import run_in_threadpool

TABLE = "bench_minimal_writes"


def create_app(database_url: str, key: str, pool_size: int, style: str) -> FastAPI:
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    with engine.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE IF NOT EXISTS {TABLE} (id uuid PRIMARY KEY, body jsonb NOT NULL)")
        )
    expected = hashlib.sha256(key.encode()).digest()
    app = FastAPI()
    read = text(
        "SELECT pending_debits, pending_credits, posted_debits, posted_credits, lock_version "
        "FROM ledger_accounts WHERE id = :id"
    )
    write = text(f"INSERT INTO {TABLE} (id, body) VALUES (:id, CAST(:body AS jsonb))")  # noqa: S608

    async def bearer(request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header.partition(" ")[2].encode()
        if not hmac.compare_digest(hashlib.sha256(token).digest(), expected):
            raise HTTPException(401, "unauthorized")

    def select_balance(account_id: uuid.UUID) -> dict[str, Any]:
        with engine.connect() as conn:
            row = conn.execute(read, {"id": account_id}).one()
        return dict(row._mapping)

    def insert_row(body: dict[str, Any]) -> dict[str, str]:
        row_id = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(write, {"id": row_id, "body": json.dumps(body)})
        return {"id": str(row_id)}

    if style == "def":
        # The plain way: FastAPI runs the endpoint in the thread pool (and its response's
        # validation in another hop).
        @app.get("/read/{account_id}", dependencies=[Depends(bearer)])
        def read_balance(account_id: uuid.UUID) -> dict[str, Any]:
            return select_balance(account_id)

        @app.post("/write", status_code=201, dependencies=[Depends(bearer)])
        def write_row(body: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
            return insert_row(body)

    else:
        # Async endpoints with their database work in one thread-pool hop, as the platform's
        # API runs its endpoints.
        @app.get("/read/{account_id}", dependencies=[Depends(bearer)])
        async def read_balance_async(account_id: uuid.UUID) -> dict[str, Any]:
            return await run_in_threadpool(select_balance, account_id)

        @app.post("/write", status_code=201, dependencies=[Depends(bearer)])
        async def write_row_async(body: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
            return await run_in_threadpool(insert_row, body)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--style", choices=("def", "async"), default="def")
    args = parser.parse_args()
    sock = socket.socket(fileno=args.listen_fd)
    app = create_app(args.database_url, args.key, args.pool_size, args.style)
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", ws="none", log_level="warning", access_log=False
    )
    os.environ.pop("PAYOUTS_API_WORKERS", None)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
