"""Cursor pagination on the lists: per_page, after_cursor, next_cursor and the MT headers."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import assert_problem, create_account, post_transaction, transfer


def walk(client: TestClient, path: str, **params: Any) -> list[list[str]]:
    """Follow next_cursor from the first page to the last; the ids of each page."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = {**params, "per_page": 2, **({"after_cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["X-Per-Page"] == "2"
        assert response.headers.get("X-After-Cursor") == body["next_cursor"]
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 10, "pagination does not end"


def test_accounts_page_by_two_until_next_cursor_is_null(
    client: TestClient, usd_ledger: dict[str, Any]
) -> None:
    created = [create_account(client, usd_ledger["id"])["id"] for _ in range(5)]
    pages = walk(client, "/v1/ledger_accounts", ledger_id=usd_ledger["id"])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == created


def test_transactions_and_entries_page_too(client: TestClient, usd_ledger: dict[str, Any]) -> None:
    ledger_id = usd_ledger["id"]
    seller = create_account(client, ledger_id, "credit")
    cash = create_account(client, ledger_id, "debit")
    txns = [
        post_transaction(client, ledger_id, transfer(cash, seller, n)).json() for n in (1, 2, 3, 4)
    ]

    pages = walk(client, "/v1/ledger_transactions", ledger_id=ledger_id)
    # An exact multiple of per_page: the second page is the last, with no empty page after it.
    assert [len(p) for p in pages] == [2, 2]
    assert [i for p in pages for i in p] == [t["id"] for t in txns]

    entry_pages = walk(client, "/v1/ledger_entries", ledger_account_id=seller["id"])
    assert len([i for p in entry_pages for i in p]) == 4


def test_a_malformed_or_foreign_cursor_is_a_422(
    client: TestClient, usd_ledger: dict[str, Any]
) -> None:
    for _ in range(3):
        create_account(client, usd_ledger["id"])
    first = client.get(
        "/v1/ledger_accounts", params={"ledger_id": usd_ledger["id"], "per_page": 1}
    ).json()
    accounts_cursor = first["next_cursor"]
    assert accounts_cursor

    for bad in ("not a cursor!", "AAAA", accounts_cursor[:-2]):
        response = client.get("/v1/ledger_accounts", params={"after_cursor": bad})
        assert_problem(response, 422, "invalid_cursor")
    foreign = client.get("/v1/ledger_transactions", params={"after_cursor": accounts_cursor})
    assert_problem(foreign, 422, "invalid_cursor")


def test_ledgers_list_pages(client: TestClient) -> None:
    for i in range(3):
        assert (
            client.post("/v1/ledgers", json={"name": f"l{i}", "currency": "USD"}).status_code == 201
        )
    first = client.get("/v1/ledgers", params={"per_page": 2})
    assert first.status_code == 200
    second = client.get(
        "/v1/ledgers", params={"per_page": 2, "after_cursor": first.headers["X-After-Cursor"]}
    )
    first_ids = {item["id"] for item in first.json()["items"]}
    second_ids = {item["id"] for item in second.json()["items"]}
    assert len(first_ids) == 2 and second_ids and not first_ids & second_ids
