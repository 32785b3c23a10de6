"""Payout account and payout routes without Temporal: masking, seller scoping, the webhook's
signature check, and what answers before any workflow call."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.auth import ApiKeyRole
from observability.metrics import WEBHOOK_DELIVERIES
from tests.api.conftest import client_for, make_key
from tests.api.helpers import assert_problem


def test_payout_account_masked_and_scoped(app: FastAPI, client: TestClient, engine: Engine) -> None:
    seller = f"s-{uuid.uuid4().hex[:10]}"
    created = client.post("/v1/sellers", json={"id": seller, "name": "Shop", "currency": "USD"})
    assert created.status_code == 201, created.text
    body = {"account_number": "000123456789", "routing_number": "110000000", "holder_name": "J"}
    put = client.put(f"/v1/sellers/{seller}/payout_account", json=body)
    assert put.status_code == 200, put.text
    assert "000123456789" not in put.text
    assert put.json()["account_number_last4"] == "6789"
    with client_for(app, make_key(engine, ApiKeyRole.SELLER, seller)) as own:
        got = own.get(f"/v1/sellers/{seller}/payout_account")
        assert got.status_code == 200 and "000123456789" not in got.text
        assert_problem(own.put(f"/v1/sellers/{seller}/payout_account", json=body), 403, "forbidden")
    with client_for(app, make_key(engine, ApiKeyRole.SELLER, "someone-else")) as other:
        assert_problem(other.get(f"/v1/sellers/{seller}/payout_account"), 404, "seller_not_found")
    # Without Temporal the payout itself is a 503, after the seller check.
    assert_problem(client.post("/v1/sellers/nobody-x/payouts", json={}), 404, "seller_not_found")
    assert_problem(
        client.post(f"/v1/sellers/{seller}/payouts", json={}), 503, "temporal_unavailable"
    )
    assert_problem(client.get("/v1/payouts/none"), 404, "payout_not_found")
    assert client.get("/v1/payouts", params={"seller_id": seller}).json()["items"] == []


def test_webhook_needs_a_valid_signature(anon: TestClient) -> None:
    refused = WEBHOOK_DELIVERIES.labels(direction="received", outcome="invalid_signature")
    before = refused._value.get()
    response = anon.post(
        "/v1/rail/webhooks", content=b"{}", headers={"Rail-Signature": "t=1,v1=00"}
    )
    assert_problem(response, 401, "invalid_signature")
    assert_problem(anon.post("/v1/rail/webhooks", content=b"{}"), 401, "invalid_signature")
    assert refused._value.get() - before == 2
