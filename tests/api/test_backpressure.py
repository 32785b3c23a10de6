"""Backpressure instead of collapse: whatever holds a request up (a row another transaction keeps
locked, a pool with no free connection, more requests than a process takes on), it is answered
within the request timeout, with a 503 problem and Retry-After, and writes nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine, text

from api import idempotency
from api.app import create_app
from api.auth import ApiKeyRole, hash_api_key
from marketplace import Marketplace
from server.database import create_api_engine
from tests.api.conftest import make_key
from tests.api.helpers import assert_problem

TIMEOUT = 1.0


@pytest.fixture
async def seller(engine: Engine) -> str:
    seller_id = f"bp-{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        Marketplace().create_seller(conn, seller_id=seller_id, name="Busy", currency="USD")
    return seller_id


async def client(
    engine: Engine, keys: Engine | None = None, **settings: float | int
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on ``engine``; its key is made through ``keys`` (default: ``engine``)."""
    app = create_app(engine, request_timeout=TIMEOUT, **settings)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {make_key(keys or engine, ApiKeyRole.ADMIN)}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
    ) as http:
        yield http


async def test_a_booking_stuck_on_a_lock_is_answered_in_time_and_writes_nothing(
    engine: Engine, database_url: str, seller: str
) -> None:
    api_engine = create_api_engine(database_url, pool_size=4, request_timeout=TIMEOUT)
    try:
        with engine.connect() as blocker:
            # Another transaction keeps the seller's running totals locked (as a long write of
            # the seller would): the booking's statement waits, and is cancelled in time.
            blocker.execute(
                text("SELECT 1 FROM seller_balances WHERE seller_id = :s FOR UPDATE"), {"s": seller}
            )
            async for http in client(api_engine, engine):
                started = time.monotonic()
                response = await http.post(
                    f"/v1/sellers/{seller}/earnings", json={"order_id": "o-1", "amount": 100}
                )
                took = time.monotonic() - started
            blocker.rollback()
        assert took < 2 * TIMEOUT, f"answered after {took:.2f} s"
        assert_problem(response, 503, "overloaded")  # type: ignore[arg-type]
        assert response.headers["Retry-After"] == "1"
        with engine.connect() as conn:
            booked = conn.execute(
                text("SELECT count(*) FROM earnings WHERE seller_id = :s"), {"s": seller}
            ).scalar_one()
        assert booked == 0
    finally:
        api_engine.dispose()


async def test_no_free_connection_is_a_quick_503(database_url: str, engine: Engine) -> None:
    api_engine = create_api_engine(database_url, pool_size=1, request_timeout=TIMEOUT)
    held = [api_engine.connect(), api_engine.connect()]  # pool and overflow, both taken
    try:
        async for http in client(api_engine, engine):
            started = time.monotonic()
            response = await http.get("/v1/ledgers")
            took = time.monotonic() - started
        assert took < TIMEOUT
        assert_problem(response, 503, "overloaded")  # type: ignore[arg-type]
        assert response.headers["Retry-After"]
    finally:
        for conn in held:
            conn.close()
        api_engine.dispose()


async def test_beyond_max_in_flight_requests_are_refused_at_once(
    engine: Engine, seller: str
) -> None:
    async for http in client(engine, max_in_flight=1):
        with engine.connect() as blocker:
            blocker.execute(
                text("SELECT 1 FROM seller_balances WHERE seller_id = :s FOR UPDATE"), {"s": seller}
            )
            stuck = asyncio.create_task(
                http.post(f"/v1/sellers/{seller}/earnings", json={"order_id": "o", "amount": 1})
            )
            await asyncio.sleep(0.3)  # the booking waits on the lock and takes the one slot
            started = time.monotonic()
            refused = await http.get("/v1/ledgers")
            took = time.monotonic() - started
            blocker.rollback()
        booked = await stuck
        served = await http.get("/v1/ledgers")  # the slot is free again
    assert took < 0.5
    assert_problem(refused, 503, "overloaded")  # type: ignore[arg-type]
    assert refused.headers["Retry-After"] == "1"
    assert booked.status_code == 201, booked.text
    assert served.status_code == 200, served.text


async def test_work_past_the_deadline_is_answered_in_time_and_never_commits(
    engine: Engine, seller: str
) -> None:
    """Nothing cancels a statement here (the engine has no statement timeout): the request waits
    past the deadline for its Idempotency-Key, which another transaction holds. The client has
    its 503 at the deadline; the work, abandoned, goes on once the key is free, rolls back
    instead of committing, and counts as in flight until then. The client's retry with the same
    key books the order once."""
    app = create_app(engine, request_timeout=TIMEOUT)
    token = make_key(engine, ApiKeyRole.ADMIN)
    path = f"/v1/sellers/{seller}/earnings"
    order = {"order_id": "late-1", "amount": 700}
    key = f"late-{seller}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    ) as http:
        with engine.connect() as blocker:
            key_id = blocker.execute(
                text("SELECT id FROM api_keys WHERE key_hash = :h"), {"h": hash_api_key(token)}
            ).scalar_one()
            held = idempotency.IdempotentRequest(key, "POST", path, "another request's hash")
            assert idempotency.claim(blocker, key_id, held) is None
            started = time.monotonic()
            late = await http.post(path, json=order)
            took = time.monotonic() - started
            assert app.state.admission.in_flight == 1, "the abandoned work no longer counts"
            blocker.rollback()
        deadline = time.monotonic() + 10
        while app.state.admission.in_flight:
            assert time.monotonic() < deadline, "the abandoned work never ended"
            await asyncio.sleep(0.05)
        with engine.connect() as conn:
            booked = conn.execute(
                text("SELECT count(*) FROM earnings WHERE seller_id = :s"), {"s": seller}
            ).scalar_one()
            claimed = conn.execute(
                text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key}
            ).scalar_one()
        retried = await http.post(path, json=order)
    assert took < TIMEOUT + 0.5, f"answered after {took:.2f} s"
    assert_problem(late, 503, "timeout")  # type: ignore[arg-type]
    assert late.headers["Retry-After"] == "1"
    assert (booked, claimed) == (0, 0), "the abandoned work committed"
    assert retried.status_code == 201, retried.text
