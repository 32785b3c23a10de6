"""The request's unit of work: commit-time errors are mapped, deadlock-like failures retried,
and a failed request leaves nothing behind. Uses a test router on ``ApiRoute``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.auth import WriteAccess
from api.dependencies import DbConnection, LedgerServiceDep
from api.routing import MAX_ATTEMPTS, ApiRoute
from tests.api.helpers import assert_problem, create_account

attempts: dict[str, list[str]] = {}


def _fail_serialization(conn: DbConnection) -> None:
    conn.execute(
        text("DO $$ BEGIN RAISE EXCEPTION 'simulated conflict' USING ERRCODE = '40001'; END $$")
    )


uow_router = APIRouter(prefix="/test", route_class=ApiRoute, dependencies=[WriteAccess])


@uow_router.post("/flaky/{run}/{failures}")
def flaky(run: str, failures: int, conn: DbConnection, ledger: LedgerServiceDep) -> dict[str, Any]:
    """Creates a ledger, then fails with a serialization failure the first ``failures`` times."""
    created = ledger.create_ledger(
        conn, name=f"{run}-{len(attempts.setdefault(run, []))}", currency="USD"
    )
    attempts[run].append(str(created.id))
    if len(attempts[run]) <= failures:
        _fail_serialization(conn)
    return {"attempts": len(attempts[run]), "ledger_id": str(created.id)}


@uow_router.post("/unbalanced/{ledger_id}/{account_id}")
def unbalanced(ledger_id: uuid.UUID, account_id: uuid.UUID, conn: DbConnection) -> dict[str, str]:
    """Writes one entry behind the ledger's back: only the deferred trigger, at COMMIT, notices."""
    txn_id, now = uuid.uuid4(), datetime.now(UTC)
    conn.execute(
        text(
            "INSERT INTO ledger_transactions (id, ledger_id, status, effective_at, metadata, "
            "total_amount, created_at, updated_at, posted_at) "
            "VALUES (:id, :ledger, 'posted', :now, '{}', 100, :now, :now, :now)"
        ),
        {"id": txn_id, "ledger": ledger_id, "now": now},
    )
    conn.execute(
        text(
            "INSERT INTO ledger_entries (id, transaction_id, ledger_id, account_id, direction, "
            "amount, ordinal, created_at) "
            "VALUES (:id, :txn, :ledger, :account, 'credit', 100, 0, :now)"
        ),
        {"id": uuid.uuid4(), "txn": txn_id, "ledger": ledger_id, "account": account_id, "now": now},
    )
    return {"id": str(txn_id)}


@pytest.fixture(scope="module")
def uow_app(engine: Engine) -> FastAPI:
    app = create_app(engine)
    app.include_router(uow_router)
    return app


@pytest.fixture
def uow_client(uow_app: FastAPI, admin_key: str) -> Iterator[TestClient]:
    with TestClient(uow_app, headers={"Authorization": f"Bearer {admin_key}"}) as c:
        yield c


def test_serialization_failures_are_retried_from_scratch(uow_client: TestClient) -> None:
    run = f"flaky-{uuid.uuid4()}"
    response = uow_client.post(f"/test/flaky/{run}/{MAX_ATTEMPTS - 1}")
    assert response.status_code == 200, response.text
    assert response.json()["attempts"] == MAX_ATTEMPTS
    # Only the last attempt's ledger exists: the failed attempts were rolled back whole.
    *failed, kept = attempts[run]
    assert response.json()["ledger_id"] == kept
    assert uow_client.get(f"/v1/ledgers/{kept}").status_code == 200
    for ledger_id in failed:
        assert_problem(uow_client.get(f"/v1/ledgers/{ledger_id}"), 404, "not_found")


def test_a_failure_that_persists_is_a_503_and_writes_nothing(uow_client: TestClient) -> None:
    run = f"hopeless-{uuid.uuid4()}"
    response = uow_client.post(f"/test/flaky/{run}/{MAX_ATTEMPTS}")
    assert_problem(response, 503, "retry_later")
    assert response.headers["Retry-After"] == "1"
    assert len(attempts[run]) == MAX_ATTEMPTS
    for ledger_id in attempts[run]:
        assert_problem(uow_client.get(f"/v1/ledgers/{ledger_id}"), 404, "not_found")


def test_errors_raised_at_commit_are_mapped_and_roll_back(
    uow_client: TestClient, usd_ledger: dict[str, Any], client: TestClient
) -> None:
    account = create_account(client, usd_ledger["id"], "credit")
    response = uow_client.post(f"/test/unbalanced/{usd_ledger['id']}/{account['id']}")
    assert_problem(response, 422, "unbalanced_transaction")
    listed = client.get("/v1/ledger_transactions", params={"ledger_id": usd_ledger["id"]}).json()
    assert listed["items"] == []
    fetched = client.get(f"/v1/ledger_accounts/{account['id']}").json()
    assert fetched["balances"]["pending_balance"]["credits"] == 0
