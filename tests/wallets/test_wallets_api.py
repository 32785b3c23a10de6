"""Wallet semantics end to end over HTTP against the real database: creating and listing wallets,
top-ups pending then settled or failed, spends checked against the available balance, refunds,
transfers, expiry changes, idempotent replays and the events each change records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.helpers import assert_problem
from tests.wallets.helpers import (
    event_types,
    lots_remaining,
    new_wallet,
    spend,
    top_up,
    views,
)


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def test_create_get_list_and_replay_a_wallet(client: TestClient, engine: Engine) -> None:
    owner = f"user-{uuid.uuid4().hex[:8]}"
    wallet_id = f"w-{uuid.uuid4().hex[:10]}"
    body = {"id": wallet_id, "owner": owner, "name": "Alice", "currency": "USD"}
    created = client.post("/v1/wallets", json=body)
    assert created.status_code == 201, created.text
    wallet = created.json()
    assert wallet["id"] == wallet_id and wallet["object"] == "wallet"
    assert wallet["expiry_workflow_id"] == f"wallet-expiries/{wallet_id}"
    assert created.headers["Location"] == f"/v1/wallets/{wallet_id}"
    # The same request again: the wallet, 200; other attributes: 409.
    again = client.post("/v1/wallets", json=body)
    assert again.status_code == 200 and again.json()["id"] == wallet_id
    assert_problem(client.post("/v1/wallets", json={**body, "name": "Bob"}), 409, "wallet_exists")
    # A generated id, and a second wallet of the same owner in another currency.
    eur = new_wallet(client, currency="EUR", owner=owner)
    assert eur["id"].startswith("wal_") and eur["currency"] == "EUR"

    assert client.get(f"/v1/wallets/{wallet_id}").json()["owner"] == owner
    assert_problem(client.get("/v1/wallets/nobody-here"), 404, "wallet_not_found")
    assert views(client, wallet_id) == (0, 0, 0)

    # Cursor pagination, filtered by owner.
    first = client.get("/v1/wallets", params={"owner": owner, "per_page": 1})
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = client.get(
        "/v1/wallets", params={"owner": owner, "per_page": 1, "after_cursor": page["next_cursor"]}
    ).json()
    ids = {page["items"][0]["id"], rest["items"][0]["id"]}
    assert ids == {wallet_id, eur["id"]} and rest["next_cursor"] is None
    assert event_types(engine, wallet_id) == ["wallet.created"]


def test_a_card_top_up_is_pending_until_it_settles(client: TestClient, engine: Engine) -> None:
    wallet = new_wallet(client)["id"]
    lot = top_up(client, wallet, 5_000)
    assert (lot["status"], lot["kind"], lot["remaining"]) == ("pending", "top_up", 5_000)
    # Pending: counted in pending, not spendable.
    assert views(client, wallet) == (5_000, 0, 0)
    assert_problem(spend(client, wallet, 100), 422, "insufficient_balance")

    settled = client.post(f"/v1/wallets/{wallet}/top_ups/{lot['id']}/settle")
    assert settled.status_code == 200, settled.text
    assert settled.json()["status"] == "settled" and settled.json()["settled_at"]
    assert views(client, wallet) == (5_000, 5_000, 5_000)
    # Settling again changes nothing; failing a settled top-up is refused.
    assert client.post(f"/v1/wallets/{wallet}/top_ups/{lot['id']}/settle").status_code == 200
    assert_problem(
        client.post(f"/v1/wallets/{wallet}/top_ups/{lot['id']}/fail"), 409, "top_up_not_pending"
    )
    assert views(client, wallet) == (5_000, 5_000, 5_000)
    assert event_types(engine, wallet) == [
        "wallet.created",
        "wallet.top_up.pending",
        "wallet.top_up.settled",
    ]


def test_a_failed_top_up_leaves_nothing(client: TestClient, engine: Engine) -> None:
    wallet = new_wallet(client)["id"]
    top_up(client, wallet, 1_000, settled=True)
    lot = top_up(client, wallet, 4_000)
    assert views(client, wallet) == (5_000, 1_000, 1_000)
    failed = client.post(f"/v1/wallets/{wallet}/top_ups/{lot['id']}/fail")
    assert failed.status_code == 200, failed.text
    assert (failed.json()["status"], failed.json()["remaining"]) == ("failed", 0)
    assert views(client, wallet) == (1_000, 1_000, 1_000)
    assert client.post(f"/v1/wallets/{wallet}/top_ups/{lot['id']}/fail").status_code == 200
    assert_problem(
        client.post(f"/v1/wallets/{wallet}/top_ups/{lot['id']}/settle"), 409, "top_up_not_pending"
    )
    assert_problem(
        client.post(f"/v1/wallets/{wallet}/top_ups/nothing/settle"), 404, "top_up_not_found"
    )
    assert event_types(engine, wallet)[-1] == "wallet.top_up.failed"
    assert lots_remaining(engine, wallet) == 1_000


def test_spends_and_refunds_partial_whole_and_too_much(client: TestClient, engine: Engine) -> None:
    wallet = new_wallet(client)["id"]
    top_up(client, wallet, 3_000, settled=True)
    refused = spend(client, wallet, 3_001)
    problem = assert_problem(refused, 422, "insufficient_balance")
    assert problem["available"] == 3_000
    response = spend(client, wallet, 2_000)
    assert response.status_code == 201, response.text
    spent = response.json()
    assert (spent["amount"], spent["refunded_amount"]) == (2_000, 0)
    assert views(client, wallet) == (1_000, 1_000, 1_000)
    refunds = f"/v1/wallets/{wallet}/spends/{spent['id']}/refunds"

    partial = client.post(refunds, json={"amount": 500})
    assert partial.status_code == 201, partial.text
    assert (partial.json()["amount"], partial.json()["spend_refunded_amount"]) == (500, 500)
    assert views(client, wallet) == (1_500, 1_500, 1_500)
    # More than what is left of the spend (1,500): refused, nothing changes.
    assert_problem(client.post(refunds, json={"amount": 1_501}), 422, "refund_exceeds_spend")
    # The whole rest.
    whole = client.post(refunds, json={})
    assert whole.status_code == 201, whole.text
    assert (whole.json()["amount"], whole.json()["spend_refunded_amount"]) == (1_500, 2_000)
    assert views(client, wallet) == (3_000, 3_000, 3_000)
    assert_problem(client.post(refunds, json={"amount": 1}), 422, "refund_exceeds_spend")
    assert_problem(client.post(refunds, json={}), 422, "refund_exceeds_spend")
    got = client.get(f"/v1/wallets/{wallet}/spends/{spent['id']}").json()
    assert got["refunded_amount"] == 2_000 and got["lots"][0]["refunded"] == 2_000
    listed = client.get(f"/v1/wallets/{wallet}/spends").json()["items"]
    assert [s["id"] for s in listed] == [spent["id"]]
    assert_problem(
        client.post(f"/v1/wallets/{wallet}/spends/nothing/refunds", json={}),
        404,
        "spend_not_found",
    )
    assert lots_remaining(engine, wallet) == 3_000
    assert event_types(engine, wallet)[-4:] == [
        "wallet.top_up.settled",
        "wallet.spent",
        "wallet.spend.refunded",
        "wallet.spend.refunded",
    ]


def test_a_spend_uses_the_money_that_expires_first(client: TestClient, engine: Engine) -> None:
    wallet = new_wallet(client)["id"]
    forever = top_up(client, wallet, 1_000, settled=True)
    late = top_up(client, wallet, 1_000, settled=True, expires_at=later(days=30))
    soon = top_up(client, wallet, 1_000, settled=True, expires_at=later(days=2))
    spent = spend(client, wallet, 1_500).json()
    assert [(s["lot_id"], s["amount"]) for s in spent["lots"]] == [
        (soon["id"], 1_000),
        (late["id"], 500),
    ]
    lots = {
        t["id"]: t["remaining"] for t in client.get(f"/v1/wallets/{wallet}/top_ups").json()["items"]
    }
    assert lots == {forever["id"]: 1_000, late["id"]: 500, soon["id"]: 0}
    balances = client.get(f"/v1/wallets/{wallet}/balances").json()
    assert (balances["available"]["amount"], balances["expiring"]) == (1_500, 500)
    # A partial refund goes back to the latest-expiring lot first, with its expiry.
    client.post(f"/v1/wallets/{wallet}/spends/{spent['id']}/refunds", json={"amount": 700})
    lots = {
        t["id"]: t["remaining"] for t in client.get(f"/v1/wallets/{wallet}/top_ups").json()["items"]
    }
    assert lots == {forever["id"]: 1_000, late["id"]: 1_000, soon["id"]: 200}
    assert lots_remaining(engine, wallet) == views(client, wallet)[1] == 2_200


def test_a_transfer_moves_both_balances_at_once(client: TestClient, engine: Engine) -> None:
    alice, bob = new_wallet(client)["id"], new_wallet(client)["id"]
    euro = new_wallet(client, currency="EUR")["id"]
    top_up(client, alice, 2_000, settled=True)
    top_up(client, alice, 1_000, settled=True, expires_at=later(days=10))
    response = client.post(
        "/v1/wallet_transfers",
        json={"from_wallet_id": alice, "to_wallet_id": bob, "amount": 1_500, "description": "rent"},
    )
    assert response.status_code == 201, response.text
    transfer = response.json()
    assert views(client, alice) == (1_500, 1_500, 1_500)
    assert views(client, bob) == (1_500, 1_500, 1_500)
    assert client.get(f"/v1/wallet_transfers/{transfer['id']}").json()["amount"] == 1_500
    # Bob got the expiring part with its expiry, and the rest without one.
    bob_lots = client.get(f"/v1/wallets/{bob}/top_ups").json()["items"]
    assert sorted((t["kind"], t["amount"], t["expires_at"] is None) for t in bob_lots) == [
        ("transfer", 500, True),
        ("transfer", 1_000, False),
    ]
    assert_problem(
        client.post(
            "/v1/wallet_transfers",
            json={"from_wallet_id": alice, "to_wallet_id": euro, "amount": 100},
        ),
        422,
        "currency_mismatch",
    )
    assert_problem(
        client.post(
            "/v1/wallet_transfers",
            json={"from_wallet_id": alice, "to_wallet_id": bob, "amount": 1_501},
        ),
        422,
        "insufficient_balance",
    )
    assert_problem(
        client.post(
            "/v1/wallet_transfers",
            json={"from_wallet_id": alice, "to_wallet_id": alice, "amount": 1},
        ),
        422,
        "validation_failed",
    )
    assert_problem(
        client.post(
            "/v1/wallet_transfers",
            json={"from_wallet_id": alice, "to_wallet_id": "nobody-here", "amount": 1},
        ),
        404,
        "wallet_not_found",
    )
    assert views(client, alice) == (1_500, 1_500, 1_500)
    assert event_types(engine, alice)[-1] == event_types(engine, bob)[-1] == "wallet.transfer"
    assert lots_remaining(engine, alice) == lots_remaining(engine, bob) == 1_500


def test_an_operator_extends_or_cancels_an_expiry(client: TestClient, engine: Engine) -> None:
    wallet = new_wallet(client)["id"]
    lot = top_up(client, wallet, 1_000, settled=True, expires_at=later(days=1))
    expiry = f"/v1/wallets/{wallet}/top_ups/{lot['id']}/expiry"
    new_end = datetime.now(UTC) + timedelta(days=90)
    extended = client.post(expiry, json={"expires_at": new_end.isoformat()})
    assert extended.status_code == 200, extended.text
    assert datetime.fromisoformat(extended.json()["expires_at"]) == new_end
    balances = client.get(f"/v1/wallets/{wallet}/balances").json()
    assert datetime.fromisoformat(balances["next_expiry_at"]) == new_end
    cancelled = client.post(expiry, json={"expires_at": None})
    assert cancelled.status_code == 200 and cancelled.json()["expires_at"] is None
    assert client.get(f"/v1/wallets/{wallet}/balances").json()["expiring"] == 0
    assert_problem(
        client.post(expiry, json={"expires_at": later(days=-1)}), 422, "validation_failed"
    )
    failed = top_up(client, wallet, 10)
    client.post(f"/v1/wallets/{wallet}/top_ups/{failed['id']}/fail")
    assert_problem(
        client.post(
            f"/v1/wallets/{wallet}/top_ups/{failed['id']}/expiry", json={"expires_at": None}
        ),
        409,
        "invalid_top_up_state",
    )
    assert event_types(engine, wallet).count("wallet.top_up.expiry_changed") == 2


def test_a_spend_replayed_with_its_idempotency_key_is_spent_once(client: TestClient) -> None:
    wallet = new_wallet(client)["id"]
    top_up(client, wallet, 1_000, settled=True)
    key = str(uuid.uuid4())
    first = spend(client, wallet, 600, **{"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    again = spend(client, wallet, 600, **{"Idempotency-Key": key})
    assert again.status_code == 201 and again.headers["Idempotency-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert views(client, wallet) == (400, 400, 400)
    # The same key with another body is refused; a new key spends again (and is refused now).
    assert_problem(
        spend(client, wallet, 300, **{"Idempotency-Key": key}), 422, "idempotency_key_reused"
    )
    assert_problem(
        spend(client, wallet, 600, **{"Idempotency-Key": str(uuid.uuid4())}),
        422,
        "insufficient_balance",
    )
    assert len(client.get(f"/v1/wallets/{wallet}/spends").json()["items"]) == 1


def test_wallet_events_are_a_stream_of_their_own(client: TestClient) -> None:
    alice, bob = new_wallet(client)["id"], new_wallet(client)["id"]
    top_up(client, alice, 800, settled=True)
    client.post(
        "/v1/wallet_transfers", json={"from_wallet_id": alice, "to_wallet_id": bob, "amount": 300}
    )
    response = client.get("/v1/events", params={"wallet_id": alice})
    assert response.status_code == 200, response.text
    events = response.json()["items"]
    assert [(e["type"], e["sequence"]) for e in events] == [
        ("wallet.created", 1),
        ("wallet.top_up.settled", 2),
        ("wallet.transfer", 3),
    ]
    assert all(e["wallet_id"] == alice and e["seller_id"] is None for e in events)
    sent = events[-1]["data"]
    assert sent["direction"] == "out" and sent["object"]["amount"] == 300
    assert sent["balances"] == {"currency": "USD", "pending": 500, "posted": 500, "available": 500}
    received = client.get("/v1/events", params={"wallet_id": bob, "type": "wallet.transfer"})
    (event,) = received.json()["items"]
    assert event["data"]["direction"] == "in" and event["data"]["balances"]["available"] == 300
    assert client.get(f"/v1/events/{event['id']}").json()["wallet_id"] == bob
