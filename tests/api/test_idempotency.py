"""The Idempotency-Key header: replays, reuse with another request, failures, concurrency."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.auth import ApiKeyRole
from tests.api.conftest import SellerAndCash, client_for, make_key
from tests.api.helpers import (
    amounts,
    assert_problem,
    post_transaction,
    transaction_count,
    transfer,
)


def key_header() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def test_same_key_and_body_replay_the_first_response(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    headers = key_header()

    first = post_transaction(client, ledger_id, transfer(cash, seller, 500), headers=headers)
    again = post_transaction(client, ledger_id, transfer(cash, seller, 500), headers=headers)

    assert first.status_code == 201
    assert "Idempotency-Replayed" not in first.headers
    assert again.status_code == 201
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.content == first.content
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["content-type"] == first.headers["content-type"]
    assert transaction_count(client, ledger_id) == 1
    assert amounts(client, seller["id"])["posted"] == 500


def test_the_body_is_compared_as_json_not_as_bytes(client: TestClient) -> None:
    headers = {**key_header(), "Content-Type": "application/json"}
    name = f"ledger {uuid.uuid4()}"
    first = client.post(
        "/v1/ledgers", content=json.dumps({"name": name, "currency": "EUR"}), headers=headers
    )
    reordered = client.post(
        "/v1/ledgers",
        content=json.dumps({"currency": "EUR", "name": name}, indent=2),
        headers=headers,
    )
    assert first.status_code == reordered.status_code == 201
    assert reordered.headers["Idempotency-Replayed"] == "true"
    assert reordered.json()["id"] == first.json()["id"]


def test_same_key_with_another_body_or_path_is_a_422(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    headers = key_header()
    assert (
        post_transaction(
            client, ledger_id, transfer(cash, seller, 500), headers=headers
        ).status_code
        == 201
    )

    other_body = post_transaction(client, ledger_id, transfer(cash, seller, 501), headers=headers)
    assert_problem(other_body, 422, "idempotency_key_reused")
    other_path = client.post(
        "/v1/ledger_accounts",
        json={"ledger_id": ledger_id, "name": "n", "normal_balance": "credit"},
        headers=headers,
    )
    assert_problem(other_path, 422, "idempotency_key_reused")
    assert transaction_count(client, ledger_id) == 1
    assert amounts(client, seller["id"])["posted"] == 500
    listed = client.get("/v1/ledger_accounts", params={"ledger_id": ledger_id}).json()
    assert len(listed["items"]) == 2


def test_a_failed_request_is_not_stored_and_its_retry_executes(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    headers = key_header()
    payout = transfer(seller, cash, 300, available_balance_amount={"gte": 0})

    refused = post_transaction(client, ledger_id, payout, status="pending", headers=headers)
    assert_problem(refused, 422, "insufficient_balance")
    assert "Idempotency-Replayed" not in refused.headers

    assert post_transaction(client, ledger_id, transfer(cash, seller, 300)).status_code == 201
    retried = post_transaction(client, ledger_id, payout, status="pending", headers=headers)
    assert retried.status_code == 201, retried.text
    assert "Idempotency-Replayed" not in retried.headers
    assert amounts(client, seller["id"]) == {"pending": 0, "posted": 300, "available": 0}


def test_keys_are_scoped_to_the_api_key(
    app: FastAPI, engine: Engine, client: TestClient, usd_ledger: dict[str, Any]
) -> None:
    headers = key_header()
    with client_for(app, make_key(engine, ApiKeyRole.OPERATOR)) as operator:
        mine = client.post("/v1/ledgers", json={"name": "a", "currency": "USD"}, headers=headers)
        theirs = operator.post(
            "/v1/ledgers", json={"name": "b", "currency": "USD"}, headers=headers
        )
    assert mine.status_code == theirs.status_code == 201
    assert "Idempotency-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_malformed_key_is_refused(client: TestClient) -> None:
    for bad in ("x" * 256, "has space"):
        response = client.post(
            "/v1/ledgers", json={"name": "a", "currency": "USD"}, headers={"Idempotency-Key": bad}
        )
        assert_problem(response, 422, "invalid_idempotency_key")


def test_concurrent_duplicates_execute_once(
    client: TestClient, engine: Engine, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    headers = key_header()
    duplicates = 5

    # Hold the seller's balance row so the first request stops inside its database transaction
    # (after claiming the key); the others must then queue on the key, not run beside it.
    with engine.connect() as blocker:
        blocker.execute(
            text("SELECT 1 FROM ledger_accounts WHERE id = :id FOR UPDATE"), {"id": seller["id"]}
        )
        with ThreadPoolExecutor(duplicates) as pool:
            futures = [
                pool.submit(
                    post_transaction,
                    client,
                    ledger_id,
                    transfer(cash, seller, 700),
                    headers=headers,
                )
                for _ in range(duplicates)
            ]
            deadline = time.monotonic() + 20
            waiting = 0
            while waiting < duplicates and time.monotonic() < deadline:
                time.sleep(0.05)
                with engine.connect() as probe:
                    waiting = probe.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND datname = current_database() "
                            "AND (query LIKE '%idempotency_keys%' OR query LIKE '%ledger_entries%')"
                        )
                    ).scalar_one()
            blocker.rollback()
            responses = [f.result(timeout=30) for f in futures]

    assert waiting >= duplicates, "the duplicates did not all wait at the same time"
    assert [r.status_code for r in responses] == [201] * duplicates
    assert len({r.content for r in responses}) == 1
    replayed = [r.headers.get("Idempotency-Replayed") for r in responses]
    assert replayed.count("true") == duplicates - 1
    assert transaction_count(client, ledger_id) == 1
    assert amounts(client, seller["id"])["posted"] == 700
