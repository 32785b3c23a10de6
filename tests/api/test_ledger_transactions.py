"""Transactions over HTTP: the three balance views through pending, post, archive and reversal;
as-of balances; balance conditions and lock_version; external_id idempotency; transitions."""

from __future__ import annotations

import uuid
from typing import Any

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


def test_balances_through_pending_post_archive_and_reversal(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash

    # An earning, on hold: pending grows, posted and available do not.
    earning = post_transaction(client, ledger_id, transfer(cash, seller, 1000), status="pending")
    assert earning.status_code == 201, earning.text
    assert earning.json()["status"] == "pending"
    assert amounts(client, seller["id"]) == {"pending": 1000, "posted": 0, "available": 0}
    assert amounts(client, cash["id"]) == {"pending": 1000, "posted": 0, "available": 0}

    # The hold ends: posted.
    posted = client.patch(
        f"/v1/ledger_transactions/{earning.json()['id']}", json={"status": "posted"}
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["status"] == "posted"
    assert posted.json()["posted_at"] is not None
    assert amounts(client, seller["id"]) == {"pending": 1000, "posted": 1000, "available": 1000}
    assert amounts(client, cash["id"]) == {"pending": 1000, "posted": 1000, "available": 1000}

    # A payout in flight: a pending debit of the seller holds available back.
    payout = post_transaction(client, ledger_id, transfer(seller, cash, 300), status="pending")
    assert payout.status_code == 201, payout.text
    assert amounts(client, seller["id"]) == {"pending": 700, "posted": 1000, "available": 700}
    assert amounts(client, cash["id"]) == {"pending": 700, "posted": 1000, "available": 700}
    seller_view = client.get(f"/v1/ledger_accounts/{seller['id']}").json()["balances"]
    assert seller_view["available_balance"] == {
        "credits": 1000,
        "debits": 300,
        "amount": 700,
        "currency": "USD",
        "currency_exponent": 2,
    }
    assert seller_view["posted_balance"]["debits"] == 0

    # The payout failed: archived, the money is available again.
    archived = client.patch(
        f"/v1/ledger_transactions/{payout.json()['id']}", json={"status": "archived"}
    )
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "archived"
    assert amounts(client, seller["id"]) == {"pending": 1000, "posted": 1000, "available": 1000}

    # A refund after posting: the reversal undoes the earning for both accounts.
    reversal = client.post(
        f"/v1/ledger_transactions/{earning.json()['id']}/reversal",
        json={"description": "order refunded"},
    )
    assert reversal.status_code == 201, reversal.text
    body = reversal.json()
    assert body["status"] == "posted"
    assert body["reverses_ledger_transaction_id"] == earning.json()["id"]
    assert body["description"] == "order refunded"
    assert sorted(
        (e["ledger_account_id"], e["direction"]) for e in body["ledger_entries"]
    ) == sorted([(seller["id"], "debit"), (cash["id"], "credit")])
    original = client.get(f"/v1/ledger_transactions/{earning.json()['id']}").json()
    assert original["reversed_by_ledger_transaction_id"] == body["id"]
    assert amounts(client, seller["id"]) == {"pending": 0, "posted": 0, "available": 0}
    assert amounts(client, cash["id"]) == {"pending": 0, "posted": 0, "available": 0}


def test_account_response_has_the_modern_treasury_shape(
    client: TestClient, usd_ledger: dict[str, Any]
) -> None:
    account = create_account(
        client, usd_ledger["id"], "credit", external_id="seller-42", metadata={"tier": "gold"}
    )
    fetched = client.get(f"/v1/ledger_accounts/{account['id']}").json()
    assert fetched == account
    assert fetched["object"] == "ledger_account"
    assert fetched["ledger_id"] == usd_ledger["id"]
    assert fetched["normal_balance"] == "credit"
    assert fetched["external_id"] == "seller-42"
    assert fetched["metadata"] == {"tier": "gold"}
    assert fetched["lock_version"] == 0
    assert fetched["currency"] == "USD"
    assert set(fetched["balances"]) >= {"pending_balance", "posted_balance", "available_balance"}
    assert fetched["created_at"] and fetched["updated_at"]


def test_as_of_gives_past_balances(client: TestClient, seller_and_cash: SellerAndCash) -> None:
    ledger_id, seller, cash = seller_and_cash
    for effective_at, amount in (("2024-01-10T12:00:00+00:00", 500), ("2024-06-01T00:00:00Z", 200)):
        response = post_transaction(
            client, ledger_id, transfer(cash, seller, amount), effective_at=effective_at
        )
        assert response.status_code == 201, response.text

    assert amounts(client, seller["id"], as_of="2023-12-31T23:59:59+00:00")["posted"] == 0
    assert amounts(client, seller["id"], as_of="2024-03-01T00:00:00+02:00")["posted"] == 500
    assert amounts(client, seller["id"], as_of="2024-06-01T02:00:00+02:00")["posted"] == 700
    assert amounts(client, seller["id"]) == {"pending": 700, "posted": 700, "available": 700}
    past = client.get(
        f"/v1/ledger_accounts/{seller['id']}", params={"as_of": "2024-03-01T00:00:00+00:00"}
    ).json()
    assert past["balances"]["as_of"].startswith("2024-03-01T00:00:00")

    # A moment without an offset is ambiguous: refused, not guessed.
    naive = client.get(f"/v1/ledger_accounts/{seller['id']}", params={"as_of": "2024-03-01T00:00"})
    assert_problem(naive, 422, "validation_error")


def test_failing_available_balance_condition_writes_nothing(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    assert post_transaction(client, ledger_id, transfer(cash, seller, 1000)).status_code == 201
    before = client.get(f"/v1/ledger_accounts/{seller['id']}").json()

    too_much = post_transaction(
        client,
        ledger_id,
        transfer(seller, cash, 1500, available_balance_amount={"gte": 0}),
        status="pending",
    )
    problem = assert_problem(too_much, 422, "insufficient_balance")
    assert problem["account_id"] == seller["id"]
    after = client.get(f"/v1/ledger_accounts/{seller['id']}").json()
    assert after["balances"] == before["balances"]
    assert after["lock_version"] == before["lock_version"]
    assert transaction_count(client, ledger_id) == 1

    exactly_all = post_transaction(
        client,
        ledger_id,
        transfer(seller, cash, 1000, available_balance_amount={"gte": 0}),
        status="pending",
    )
    assert exactly_all.status_code == 201, exactly_all.text
    assert amounts(client, seller["id"]) == {"pending": 0, "posted": 1000, "available": 0}


def test_posted_and_pending_balance_bounds(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    capped = [
        entry(cash, "debit", 600),
        entry(seller, "credit", 600, pending_balance_amount={"lte": 500}),
    ]
    assert_problem(post_transaction(client, ledger_id, capped), 422, "insufficient_balance")
    exact = [
        entry(cash, "debit", 500),
        entry(seller, "credit", 500, posted_balance_amount={"eq": 500, "gt": 499}),
    ]
    assert post_transaction(client, ledger_id, exact).status_code == 201
    assert amounts(client, seller["id"])["posted"] == 500


def test_lock_version_mismatch_is_refused(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    assert post_transaction(client, ledger_id, transfer(cash, seller, 100)).status_code == 201
    version = client.get(f"/v1/ledger_accounts/{seller['id']}").json()["lock_version"]
    assert version == 1

    stale = post_transaction(
        client, ledger_id, [entry(cash, "debit", 50), entry(seller, "credit", 50, lock_version=0)]
    )
    problem = assert_problem(stale, 422, "insufficient_balance")
    assert problem["account_id"] == seller["id"]
    assert amounts(client, seller["id"])["posted"] == 100

    current = post_transaction(
        client,
        ledger_id,
        [entry(cash, "debit", 50), entry(seller, "credit", 50, lock_version=version)],
    )
    assert current.status_code == 201, current.text
    assert client.get(f"/v1/ledger_accounts/{seller['id']}").json()["lock_version"] == 2


def test_external_id_makes_creation_idempotent(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    external_id = f"order-{uuid.uuid4()}"
    first = post_transaction(
        client, ledger_id, transfer(cash, seller, 250), external_id=external_id
    )
    again = post_transaction(
        client, ledger_id, transfer(cash, seller, 250), external_id=external_id
    )
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert amounts(client, seller["id"])["posted"] == 250

    different = post_transaction(
        client, ledger_id, transfer(cash, seller, 999), external_id=external_id
    )
    problem = assert_problem(different, 409, "idempotency_conflict")
    assert problem["transaction_id"] == first.json()["id"]
    assert amounts(client, seller["id"])["posted"] == 250
    listed = client.get("/v1/ledger_transactions", params={"external_id": external_id}).json()
    assert [t["id"] for t in listed["items"]] == [first.json()["id"]]


def test_account_external_id_is_idempotent_and_conflicts_when_different(
    client: TestClient, usd_ledger: dict[str, Any]
) -> None:
    ledger_id = usd_ledger["id"]
    first = create_account(client, ledger_id, "credit", external_id="seller-7")
    again = create_account(client, ledger_id, "credit", external_id="seller-7")
    assert again["id"] == first["id"]
    clash = client.post(
        "/v1/ledger_accounts",
        json={
            "ledger_id": ledger_id,
            "name": "another name",
            "normal_balance": "credit",
            "external_id": "seller-7",
        },
    )
    assert_problem(clash, 409, "idempotency_conflict")


def test_only_pending_transactions_change_status(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    posted = post_transaction(client, ledger_id, transfer(cash, seller, 100)).json()
    pending = post_transaction(
        client, ledger_id, transfer(cash, seller, 40), status="pending"
    ).json()

    archive_posted = client.patch(
        f"/v1/ledger_transactions/{posted['id']}", json={"status": "archived"}
    )
    assert_problem(archive_posted, 409, "invalid_state_transition")
    back_to_pending = client.patch(
        f"/v1/ledger_transactions/{pending['id']}", json={"status": "pending"}
    )
    assert_problem(back_to_pending, 422, "validation_error")
    reverse_pending = client.post(f"/v1/ledger_transactions/{pending['id']}/reversal")
    assert_problem(reverse_pending, 409, "invalid_state_transition")

    assert client.post(f"/v1/ledger_transactions/{posted['id']}/reversal").status_code == 201
    twice = client.post(f"/v1/ledger_transactions/{posted['id']}/reversal")
    assert_problem(twice, 409, "already_reversed")
    assert amounts(client, seller["id"]) == {"pending": 40, "posted": 0, "available": 0}
    assert client.get(f"/v1/ledger_transactions/{posted['id']}").json()["status"] == "posted"


def test_metadata_of_a_posted_transaction_can_change(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, seller, cash = seller_and_cash
    txn = post_transaction(
        client, ledger_id, transfer(cash, seller, 100), metadata={"order": "o-1", "note": "x"}
    ).json()
    patched = client.patch(
        f"/v1/ledger_transactions/{txn['id']}", json={"metadata": {"note": None, "batch": "b-9"}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["metadata"] == {"order": "o-1", "batch": "b-9"}
    assert patched.json()["status"] == "posted"
    assert [e["amount"] for e in patched.json()["ledger_entries"]] == [100, 100]


def test_lists_filter_transactions_and_entries(
    client: TestClient, usd_ledger: dict[str, Any]
) -> None:
    ledger_id = usd_ledger["id"]
    seller = create_account(client, ledger_id, "credit")
    other = create_account(client, ledger_id, "credit")
    cash = create_account(client, ledger_id, "debit")
    to_seller = post_transaction(client, ledger_id, transfer(cash, seller, 100)).json()
    held = post_transaction(
        client,
        ledger_id,
        transfer(cash, other, 70),
        status="pending",
        effective_at="2020-05-05T00:00:00+00:00",
    ).json()

    def ids(path: str, **params: Any) -> list[str]:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    txns = "/v1/ledger_transactions"
    assert ids(txns, ledger_id=ledger_id) == [to_seller["id"], held["id"]]
    assert ids(txns, ledger_account_id=seller["id"]) == [to_seller["id"]]
    assert ids(txns, ledger_id=ledger_id, status="pending") == [held["id"]]
    assert ids(txns, ledger_id=ledger_id, **{"effective_at[lt]": "2021-01-01T00:00:00Z"}) == [
        held["id"]
    ]
    assert ids(txns, ledger_id=ledger_id, **{"effective_at[gte]": "2021-01-01T00:00:00Z"}) == [
        to_seller["id"]
    ]

    entries = client.get("/v1/ledger_entries", params={"ledger_account_id": other["id"]}).json()
    assert [(e["amount"], e["direction"], e["status"]) for e in entries["items"]] == [
        (70, "credit", "pending")
    ]
    assert entries["items"][0]["ledger_transaction_id"] == held["id"]
    by_txn = ids("/v1/ledger_entries", ledger_transaction_id=to_seller["id"])
    assert sorted(by_txn) == sorted(e["id"] for e in to_seller["ledger_entries"])
    posted_entries = ids("/v1/ledger_entries", ledger_id=ledger_id, status="posted")
    assert len(posted_entries) == 2

    accounts = client.get("/v1/ledger_accounts", params={"ledger_id": ledger_id}).json()
    assert [a["id"] for a in accounts["items"]] == [seller["id"], other["id"], cash["id"]]
