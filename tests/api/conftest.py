"""API fixtures: the app on the session's PostgreSQL, API keys of each role, HTTP clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.auth import ApiKeyRole, create_api_key
from ledger_core import LedgerService
from tests.api.helpers import create_account


def make_key(engine: Engine, role: ApiKeyRole, seller_id: str | None = None) -> str:
    with engine.begin() as conn:
        key, _ = create_api_key(conn, role=role, seller_id=seller_id, name=f"test {role}")
    return key


def client_for(app: FastAPI, key: str | None) -> TestClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return TestClient(app, headers=headers)


@pytest.fixture(scope="session")
def app(engine: Engine, ledger_service: LedgerService) -> FastAPI:
    return create_app(engine, ledger_service)


@pytest.fixture(scope="session")
def admin_key(engine: Engine) -> str:
    return make_key(engine, ApiKeyRole.ADMIN)


@pytest.fixture
def client(app: FastAPI, admin_key: str) -> Iterator[TestClient]:
    with client_for(app, admin_key) as c:
        yield c


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    with client_for(app, None) as c:
        yield c


@pytest.fixture
def usd_ledger(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/ledgers", json={"name": f"usd {uuid.uuid4()}", "currency": "USD"})
    assert response.status_code == 201, response.text
    ledger: dict[str, Any] = response.json()
    return ledger


class SellerAndCash(NamedTuple):
    """A fresh USD ledger's id, a credit-normal seller account and a debit-normal cash account."""

    ledger_id: str
    seller: dict[str, Any]
    cash: dict[str, Any]


@pytest.fixture
def seller_and_cash(client: TestClient, usd_ledger: dict[str, Any]) -> SellerAndCash:
    ledger_id = usd_ledger["id"]
    seller = create_account(client, ledger_id, "credit")
    cash = create_account(client, ledger_id, "debit")
    return SellerAndCash(ledger_id, seller, cash)
