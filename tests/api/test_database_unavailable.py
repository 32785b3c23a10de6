"""The database going away under the API: a 503 ``database_unavailable`` problem a client can
retry, never a 500; and a pooled connection the server dropped (as a PostgreSQL restart drops
every one) is replaced without the client noticing. The whole stack under these faults:
tests/faults."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.auth import WriteAccess
from api.dependencies import DbConnection
from api.routing import ApiRoute
from server.database import create_db_engine
from tests.api.helpers import assert_problem

outage_router = APIRouter(prefix="/test", route_class=ApiRoute, dependencies=[WriteAccess])


@outage_router.post("/connection_lost")
def connection_lost(conn: DbConnection) -> dict[str, str]:
    """The server ends this request's connection half way, as a crash or restart would."""
    conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
    return {"unreachable": "the connection is gone"}


@pytest.fixture
def small_pool(database_url: str) -> Iterator[Engine]:
    """One pooled connection, so the test knows which backend serves the next request."""
    engine = create_db_engine(database_url, pool_size=1)
    yield engine
    engine.dispose()


def _client(engine: Engine, key: str) -> TestClient:
    app: FastAPI = create_app(engine)
    app.include_router(outage_router)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def test_an_unreachable_database_is_a_503_problem(admin_key: str) -> None:
    nowhere = Path(tempfile.mkdtemp(prefix="payouts-no-pg-"))  # no server listens there
    engine = create_db_engine(f"postgresql://postgres@/postgres?host={nowhere}", pool_size=1)
    try:
        with _client(engine, admin_key) as client:
            for response in (
                client.get(f"/v1/ledgers/{uuid.uuid4()}"),
                client.post(
                    "/v1/ledgers",
                    json={"name": "never", "currency": "USD"},
                    headers={"Idempotency-Key": f"k-{uuid.uuid4()}"},
                ),
            ):
                assert_problem(response, 503, "database_unavailable")
                assert response.headers["Retry-After"] == "1"
    finally:
        engine.dispose()
        nowhere.rmdir()


def test_a_connection_lost_during_the_request_is_a_503_problem(
    small_pool: Engine, admin_key: str
) -> None:
    with _client(small_pool, admin_key) as client:
        assert_problem(client.post("/test/connection_lost"), 503, "database_unavailable")
        # The next request gets a working connection.
        assert client.get("/v1/ledgers").status_code == 200


def test_a_pooled_connection_the_server_dropped_is_replaced(
    small_pool: Engine, engine: Engine, admin_key: str
) -> None:
    with _client(small_pool, admin_key) as client:
        assert client.get("/v1/ledgers").status_code == 200
        with small_pool.connect() as pooled:  # the one connection the requests use
            backend = pooled.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.begin() as other:
            assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        response = client.post(
            "/v1/ledgers",
            json={"name": f"after the drop {uuid.uuid4()}", "currency": "USD"},
            headers={"Idempotency-Key": f"k-{uuid.uuid4()}"},
        )
        assert response.status_code == 201, response.text
        created = client.get(f"/v1/ledgers/{response.json()['id']}")
        assert created.status_code == 200, created.text
