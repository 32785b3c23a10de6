"""Small helpers for the API tests: create resources over HTTP and read balances."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

PROBLEM_JSON = "application/problem+json"


def create_account(
    client: TestClient, ledger_id: str, normal_balance: str = "credit", **extra: Any
) -> dict[str, Any]:
    body = {
        "ledger_id": ledger_id,
        "name": f"{normal_balance} account",
        "normal_balance": normal_balance,
    }
    response = client.post("/v1/ledger_accounts", json={**body, **extra})
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()
    return account


def entry(account: dict[str, Any], direction: str, amount: Any, **extra: Any) -> dict[str, Any]:
    return {"ledger_account_id": account["id"], "direction": direction, "amount": amount, **extra}


def transfer(
    debit: dict[str, Any], credit: dict[str, Any], amount: Any, **debit_extra: Any
) -> list[dict[str, Any]]:
    """Entries moving ``amount`` from the debited to the credited account."""
    return [entry(debit, "debit", amount, **debit_extra), entry(credit, "credit", amount)]


def post_transaction(
    client: TestClient,
    ledger_id: str,
    entries: list[dict[str, Any]],
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    response: Response = client.post(
        "/v1/ledger_transactions",
        json={"ledger_id": ledger_id, "ledger_entries": entries, **extra},
        headers=headers,
    )
    return response


def amounts(client: TestClient, account_id: str, **params: str) -> dict[str, int]:
    """The three balance amounts of an account, read over HTTP."""
    response = client.get(f"/v1/ledger_accounts/{account_id}", params=params)
    assert response.status_code == 200, response.text
    balances = response.json()["balances"]
    return {
        "pending": balances["pending_balance"]["amount"],
        "posted": balances["posted_balance"]["amount"],
        "available": balances["available_balance"]["amount"],
    }


def transaction_count(client: TestClient, ledger_id: str) -> int:
    response = client.get(
        "/v1/ledger_transactions", params={"ledger_id": ledger_id, "per_page": 100}
    )
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] and problem["title"] and problem["detail"]
    return problem
