"""Every bad input is a 4xx problem+json with a stable code, never a 500, and writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import SellerAndCash
from tests.api.helpers import (
    amounts,
    assert_problem,
    create_account,
    entry,
    post_transaction,
    transaction_count,
    transfer,
)


@pytest.fixture
def accounts(seller_and_cash: SellerAndCash) -> dict[str, dict[str, Any]]:
    return {"seller": seller_and_cash.seller, "cash": seller_and_cash.cash}


def assert_untouched(
    client: TestClient, ledger_id: str, accounts: dict[str, dict[str, Any]]
) -> None:
    assert transaction_count(client, ledger_id) == 0
    for account in accounts.values():
        assert amounts(client, account["id"]) == {"pending": 0, "posted": 0, "available": 0}
        assert client.get(f"/v1/ledger_accounts/{account['id']}").json()["lock_version"] == 0


def test_malformed_json_is_a_400_problem(
    client: TestClient, usd_ledger: dict[str, Any], accounts: dict[str, dict[str, Any]]
) -> None:
    response = client.post(
        "/v1/ledger_transactions",
        content=b'{"ledger_id": "' + usd_ledger["id"].encode() + b'", "ledger_entries": [',
        headers={"Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400, "malformed_json")
    assert "JSON" in problem["detail"]
    assert_untouched(client, usd_ledger["id"], accounts)


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (1.5, "float"),
        (1.0, "integral float"),
        ("100", "string"),
        (True, "boolean"),
        (0, "zero"),
        (-100, "negative"),
        (2**63, "beyond bigint"),
        (None, "null"),
    ],
)
def test_amount_must_be_a_positive_integer(
    client: TestClient,
    usd_ledger: dict[str, Any],
    accounts: dict[str, dict[str, Any]],
    amount: Any,
    reason: str,
) -> None:
    response = post_transaction(
        client, usd_ledger["id"], transfer(accounts["cash"], accounts["seller"], amount)
    )
    problem = assert_problem(response, 422, "validation_error")
    locations = [error["loc"] for error in problem["errors"]]
    assert ["body", "ledger_entries", 0, "amount"] in locations, reason
    assert_untouched(client, usd_ledger["id"], accounts)


@pytest.mark.parametrize(
    "change",
    [
        {"ledger_id": "not-a-uuid"},
        {"status": "archived"},
        {"effective_at": "yesterday"},
        {"effective_at": "2024-01-01T00:00:00"},  # no offset
        {"metadata": {"order": 42}},  # metadata values are strings
        {"description": "nul \u0000 byte"},
        {"unexpected_field": 1},
        {"ledger_entries": []},
    ],
)
def test_wrong_types_and_shapes_are_validation_errors(
    client: TestClient,
    usd_ledger: dict[str, Any],
    accounts: dict[str, dict[str, Any]],
    change: dict[str, Any],
) -> None:
    body = {
        "ledger_id": usd_ledger["id"],
        "ledger_entries": transfer(accounts["cash"], accounts["seller"], 100),
        **change,
    }
    response = client.post("/v1/ledger_transactions", json=body)
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"] and all({"loc", "msg", "type"} <= set(e) for e in problem["errors"])
    assert_untouched(client, usd_ledger["id"], accounts)


@pytest.mark.parametrize(
    "entry_change",
    [
        {"direction": "sideways"},
        {"ledger_account_id": 12},
        {"available_balance_amount": {"gte": 0.5}},
        {"available_balance_amount": {"at_least": 0}},
        {"available_balance_amount": {}},
        {"lock_version": "1"},
        {"available_balance": {"gte": 0}},  # a misspelt condition is not silently dropped
    ],
)
def test_wrong_entry_fields_are_validation_errors(
    client: TestClient,
    usd_ledger: dict[str, Any],
    accounts: dict[str, dict[str, Any]],
    entry_change: dict[str, Any],
) -> None:
    entries = [
        entry(accounts["seller"], "debit", 100) | entry_change,
        entry(accounts["cash"], "credit", 100),
    ]
    response = post_transaction(client, usd_ledger["id"], entries)
    assert_problem(response, 422, "validation_error")
    assert_untouched(client, usd_ledger["id"], accounts)


def test_unbalanced_entries_are_refused(
    client: TestClient, usd_ledger: dict[str, Any], accounts: dict[str, dict[str, Any]]
) -> None:
    entries = [entry(accounts["cash"], "debit", 100), entry(accounts["seller"], "credit", 90)]
    problem = assert_problem(
        post_transaction(client, usd_ledger["id"], entries), 422, "unbalanced_transaction"
    )
    assert problem["debits"] == 100 and problem["credits"] == 90
    assert_untouched(client, usd_ledger["id"], accounts)


def test_an_account_of_another_currency_is_a_currency_mismatch(
    client: TestClient, usd_ledger: dict[str, Any], accounts: dict[str, dict[str, Any]]
) -> None:
    eur = client.post("/v1/ledgers", json={"name": f"eur {uuid.uuid4()}", "currency": "EUR"})
    assert eur.status_code == 201
    euro_account = create_account(client, eur.json()["id"], "credit")
    entries = [entry(accounts["cash"], "debit", 100), entry(euro_account, "credit", 100)]
    problem = assert_problem(
        post_transaction(client, usd_ledger["id"], entries), 422, "currency_mismatch"
    )
    assert problem["account_id"] == euro_account["id"]
    assert_untouched(client, usd_ledger["id"], accounts)
    assert amounts(client, euro_account["id"])["pending"] == 0

    wrong_currency_account = client.post(
        "/v1/ledger_accounts",
        json={
            "ledger_id": usd_ledger["id"],
            "name": "euro seller",
            "normal_balance": "credit",
            "currency": "EUR",
        },
    )
    assert_problem(wrong_currency_account, 422, "currency_mismatch")


def test_unknown_ids_are_404(
    client: TestClient, usd_ledger: dict[str, Any], accounts: dict[str, dict[str, Any]]
) -> None:
    unknown = str(uuid.uuid4())
    for path in (
        f"/v1/ledgers/{unknown}",
        f"/v1/ledger_accounts/{unknown}",
        f"/v1/ledger_transactions/{unknown}",
        "/v1/ledgers/not-a-uuid",
        "/v1/ledger_transactions/12345",
        "/v1/nothing_here",
    ):
        assert_problem(client.get(path), 404, "not_found")
    assert_problem(
        client.patch(f"/v1/ledger_transactions/{unknown}", json={"status": "posted"}),
        404,
        "not_found",
    )
    assert_problem(client.post(f"/v1/ledger_transactions/{unknown}/reversal"), 404, "not_found")

    ghost = {"id": unknown}
    problem = assert_problem(
        post_transaction(client, usd_ledger["id"], transfer(accounts["cash"], ghost, 100)),
        404,
        "not_found",
    )
    assert unknown in problem["detail"]
    assert_untouched(client, usd_ledger["id"], accounts)

    account_in_no_ledger = client.post(
        "/v1/ledger_accounts",
        json={"ledger_id": unknown, "name": "orphan", "normal_balance": "debit"},
    )
    assert_problem(account_in_no_ledger, 404, "not_found")


def test_bad_ledger_and_account_requests(client: TestClient, usd_ledger: dict[str, Any]) -> None:
    assert_problem(
        client.post("/v1/ledgers", json={"name": "x", "currency": "usd"}), 422, "validation_error"
    )
    assert_problem(
        client.post("/v1/ledgers", json={"name": "x", "currency": "USD", "currency_exponent": 3}),
        422,
        "validation_failed",
    )
    assert_problem(
        client.post(
            "/v1/ledger_accounts",
            json={"ledger_id": usd_ledger["id"], "name": "x", "normal_balance": "sideways"},
        ),
        422,
        "validation_error",
    )
    listed = client.get("/v1/ledger_accounts", params={"ledger_id": usd_ledger["id"]}).json()
    assert listed["items"] == []


def test_wrong_method_is_405_and_bad_query_is_422(client: TestClient) -> None:
    problem = assert_problem(client.delete("/v1/ledgers"), 405, "method_not_allowed")
    assert "DELETE" in problem["detail"]
    assert_problem(client.get("/v1/ledgers", params={"per_page": 0}), 422, "validation_error")
    assert_problem(client.get("/v1/ledgers", params={"per_page": 1000}), 422, "validation_error")
    assert_problem(
        client.get("/v1/ledger_transactions", params={"status": "lost"}), 422, "validation_error"
    )


def test_a_body_that_is_not_json_is_refused(client: TestClient, usd_ledger: dict[str, Any]) -> None:
    response = client.post(
        "/v1/ledgers", content=b"name=x&currency=USD", headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 422, "validation_error")


def test_an_oversized_body_is_a_413_problem(client: TestClient) -> None:
    big = b'{"name": "' + b"x" * 3_000_000 + b'", "currency": "USD"}'
    response = client.post("/v1/ledgers", content=big, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "payload_too_large")
