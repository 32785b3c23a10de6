"""Authentication and roles: bearer API keys stored hashed; admin bootstrap."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.auth import (
    ApiKeyRole,
    _insert_key,
    create_api_key,
    ensure_admin_key,
    generate_api_key,
    hash_api_key,
    revoke_api_key,
)
from server.database import create_db_engine, migrate
from tests.api.conftest import client_for, make_key
from tests.api.helpers import assert_problem, create_account, post_transaction, transfer


def test_requests_without_a_valid_key_are_401(app: FastAPI, engine: Engine) -> None:
    with client_for(app, None) as anon:
        missing = anon.get("/v1/ledgers")
        problem = assert_problem(missing, 401, "unauthorized")
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization" in problem["detail"]

        basic = anon.get("/v1/ledgers", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert_problem(basic, 401, "unauthorized")
        # Unauthenticated callers learn nothing about their body, even if it is broken.
        broken = anon.post(
            "/v1/ledgers", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_problem(broken, 401, "unauthorized")

    with client_for(app, "sk_" + "x" * 43) as wrong:
        invalid = wrong.get("/v1/ledgers")
        assert_problem(invalid, 401, "unauthorized")
        assert "invalid_token" in invalid.headers["WWW-Authenticate"]


def revoke(engine: Engine, key: str) -> None:
    """Revoke ``key`` in the database, as an operator would."""
    with engine.begin() as conn:
        record = conn.execute(
            text("SELECT id FROM api_keys WHERE key_hash = :h"), {"h": hash_api_key(key)}
        ).scalar_one()
        revoke_api_key(conn, record)


def test_a_revoked_or_new_key_takes_effect_within_the_cache_time(engine: Engine) -> None:
    """Keys are authenticated from a cache (no query per request): a revoked key is refused,
    and a key created after it was first tried is accepted, within ``key_cache_seconds``."""
    app = create_app(engine, key_cache_seconds=1.0)
    key = make_key(engine, ApiKeyRole.OPERATOR)
    with client_for(app, key) as operator:
        assert operator.get("/v1/ledgers").status_code == 200
        revoke(engine, key)
        # Within the bound the cached key may still pass; after it, it never does.
        deadline = time.monotonic() + 1.0
        while operator.get("/v1/ledgers").status_code == 200:
            assert time.monotonic() < deadline, "a revoked key outlived the cache time"
            time.sleep(0.05)
        assert_problem(operator.get("/v1/ledgers"), 401, "unauthorized")

    future = generate_api_key()
    with client_for(app, future) as early:
        assert_problem(early.get("/v1/ledgers"), 401, "unauthorized")
        with engine.begin() as conn:
            _insert_key(conn, key=future, role=ApiKeyRole.OPERATOR, seller_id=None, name="late")
        deadline = time.monotonic() + 1.0
        while early.get("/v1/ledgers").status_code == 401:
            assert time.monotonic() < deadline, "a new key was refused past the cache time"
            time.sleep(0.05)


def test_without_a_cache_every_request_asks_the_database(engine: Engine) -> None:
    app = create_app(engine, key_cache_seconds=0)
    key = make_key(engine, ApiKeyRole.OPERATOR)
    with client_for(app, key) as operator:
        assert operator.get("/v1/ledgers").status_code == 200
        revoke(engine, key)
        assert_problem(operator.get("/v1/ledgers"), 401, "unauthorized")


def test_health_and_docs_need_no_key(anon: TestClient) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/readyz").status_code == 200
    assert anon.get("/docs").status_code == 200
    spec = anon.get("/openapi.json").json()
    assert "/v1/ledger_transactions" in spec["paths"]


def test_a_seller_key_can_neither_read_nor_write_the_raw_ledger(
    app: FastAPI, engine: Engine, client: TestClient, usd_ledger: dict[str, Any]
) -> None:
    ledger_id = usd_ledger["id"]
    seller_account = create_account(client, ledger_id, "credit")
    cash = create_account(client, ledger_id, "debit")
    txn = post_transaction(client, ledger_id, transfer(cash, seller_account, 100)).json()

    with client_for(app, make_key(engine, ApiKeyRole.SELLER, seller_id="seller-1")) as seller:
        writes = [
            seller.get(f"/v1/ledger_accounts/{seller_account['id']}"),
            seller.get("/v1/ledger_accounts", params={"ledger_id": ledger_id}),
            seller.get(f"/v1/ledger_transactions/{txn['id']}"),
            seller.get("/v1/ledger_entries", params={"ledger_id": ledger_id}),
            seller.get(f"/v1/ledgers/{ledger_id}"),
            seller.post("/v1/ledgers", json={"name": "mine", "currency": "USD"}),
            seller.post(
                "/v1/ledger_accounts",
                json={"ledger_id": ledger_id, "name": "x", "normal_balance": "credit"},
            ),
            post_transaction(seller, ledger_id, transfer(cash, seller_account, 5)),
            seller.patch(f"/v1/ledger_transactions/{txn['id']}", json={"metadata": {"a": "b"}}),
            seller.post(f"/v1/ledger_transactions/{txn['id']}/reversal"),
        ]
    for response in writes:
        problem = assert_problem(response, 403, "forbidden")
        assert problem["role"] == "seller"

    unchanged = client.get(f"/v1/ledger_transactions/{txn['id']}").json()
    assert unchanged["metadata"] == {}
    assert unchanged["reversed_by_ledger_transaction_id"] is None
    listed = client.get("/v1/ledger_accounts", params={"ledger_id": ledger_id}).json()
    assert len(listed["items"]) == 2


def test_an_operator_key_writes(app: FastAPI, engine: Engine) -> None:
    with client_for(app, make_key(engine, ApiKeyRole.OPERATOR)) as operator:
        created = operator.post("/v1/ledgers", json={"name": "ops", "currency": "GBP"})
        assert created.status_code == 201
        assert operator.get(f"/v1/ledgers/{created.json()['id']}").json()["currency"] == "GBP"


def test_keys_are_stored_hashed_and_roles_validated(engine: Engine) -> None:
    with engine.begin() as conn:
        key, record = create_api_key(conn, role="seller", seller_id="s-9", name="shop")
        stored = conn.execute(
            text("SELECT key_hash, key_prefix FROM api_keys WHERE id = :id"), {"id": record.id}
        ).one()
    assert key.startswith("sk_") and len(key) >= 40
    assert stored.key_hash == hash_api_key(key) != key
    assert key.startswith(stored.key_prefix) and len(stored.key_prefix) < 16
    assert record.role is ApiKeyRole.SELLER and record.seller_id == "s-9"

    with engine.begin() as conn:
        with pytest.raises(ValueError, match="seller id"):
            create_api_key(conn, role="seller", name="no seller")
        with pytest.raises(ValueError, match="not scoped"):
            create_api_key(conn, role="admin", seller_id="s-1", name="admin with seller")
        with pytest.raises(ValueError, match="role"):
            create_api_key(conn, role="superuser", name="unknown role")


@pytest.fixture
def empty_database(engine: Engine) -> Iterator[Engine]:
    """A database of its own (same server), migrated, with no API keys at all."""
    name = f"api_bootstrap_{uuid.uuid4().hex[:12]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = engine.url.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    fresh = create_db_engine(url, pool_size=2)
    try:
        yield fresh
    finally:
        fresh.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def test_first_start_creates_an_admin_key_once(empty_database: Engine) -> None:
    created = ensure_admin_key(empty_database, None)
    assert created is not None
    assert ensure_admin_key(empty_database, None) is None  # printed once, never again
    with client_for(create_app(empty_database), created) as admin:
        assert admin.post("/v1/ledgers", json={"name": "l", "currency": "USD"}).status_code == 201


def test_configured_admin_key_is_registered(empty_database: Engine) -> None:
    configured = "configured-admin-key-" + uuid.uuid4().hex
    assert ensure_admin_key(empty_database, configured) is None
    assert ensure_admin_key(empty_database, configured) is None  # idempotent on restart
    assert ensure_admin_key(empty_database, None) is None  # an admin exists: none generated
    with client_for(create_app(empty_database), configured) as admin:
        assert admin.post("/v1/ledgers", json={"name": "l", "currency": "USD"}).status_code == 201
    with pytest.raises(ValueError, match="at least"):
        ensure_admin_key(empty_database, "short")
