"""A world of objects of one mode, for the test mode tests (``tests/api/test_modes.py``): one
object of every kind a route names in its path (a seller with an earning, a payout and a dispute;
a webhook endpoint with a delivery; a ledger with accounts and a transaction; wallets with a
top-up, a spend and a transfer), made with a key of that mode."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.auth import ApiKeyRole, create_api_key
from api.modes import PATH_ROOTS
from marketplace import Marketplace, Payouts

PARAM = re.compile(r"{([^}]+)}")
ACCOUNT, ROUTING = "000123456789", "110000000"


def make_key(engine: Engine, *, livemode: bool, role: ApiKeyRole = ApiKeyRole.ADMIN) -> str:
    with engine.begin() as conn:
        key, _ = create_api_key(conn, role=role, name="modes test", livemode=livemode)
    return key


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class World:
    """One object of every kind named in a path, all of one mode."""

    livemode: bool
    ids: dict[str, str]


def build_world(client: TestClient, engine: Engine, livemode: bool, uid: str) -> World:
    tag = ("live" if livemode else "test") + f"-{uid}"
    ids: dict[str, str] = {}
    endpoint = ok(
        client.post(
            "/v1/webhook_endpoints",
            json={"url": f"https://example.com/{tag}", "event_types": ["*"]},
        ),
        201,
    )
    ids["endpoint_id"] = endpoint["id"]
    seller = ok(
        client.post("/v1/sellers", json={"id": f"s-{tag}", "name": "S", "currency": "USD"}), 201
    )
    ids["seller_id"] = seller["id"]
    earning = ok(
        client.post(
            f"/v1/sellers/{seller['id']}/earnings", json={"order_id": "o-1", "amount": 900}
        ),
        201,
    )
    ids["order_id"] = earning["order_id"]
    market = Marketplace()
    payouts = Payouts(market)
    with engine.begin() as conn:
        payouts.set_payout_account(conn, seller["id"], ACCOUNT, ROUTING, "Jane")
        market.post_earning(conn, seller["id"], "o-1")
        ids["payout_id"] = payouts.reserve_payout(
            conn, payout_id=f"po-{tag}", seller_id=seller["id"], amount=100
        ).id
        ids["dispute_id"] = market.open_dispute(
            conn,
            dispute_id=f"dp-{tag}",
            seller_id=seller["id"],
            order_id="o-1",
            amount=50,
            deadline=datetime.now(UTC) + timedelta(days=7),
        ).id
    events = ok(client.get("/v1/events", params={"seller_id": seller["id"]}))["items"]
    ids["event_id"] = events[0]["id"]
    deliveries = ok(
        client.get("/v1/webhook_deliveries", params={"endpoint_id": ids["endpoint_id"]})
    )["items"]
    ids["delivery_id"] = deliveries[0]["id"]

    ledger = ok(client.post("/v1/ledgers", json={"name": tag, "currency": "USD"}), 201)
    ids["ledger_id"] = ledger["id"]
    accounts = [
        ok(
            client.post(
                "/v1/ledger_accounts",
                json={"ledger_id": ledger["id"], "name": n, "normal_balance": n},
            ),
            201,
        )
        for n in ("debit", "credit")
    ]
    ids["ledger_account_id"] = accounts[0]["id"]
    txn = ok(
        client.post(
            "/v1/ledger_transactions",
            json={
                "ledger_id": ledger["id"],
                "status": "pending",
                "ledger_entries": [
                    {"ledger_account_id": accounts[0]["id"], "direction": "debit", "amount": 5},
                    {"ledger_account_id": accounts[1]["id"], "direction": "credit", "amount": 5},
                ],
            },
        ),
        201,
    )
    ids["ledger_transaction_id"] = txn["id"]

    wallets = [
        ok(
            client.post(
                "/v1/wallets",
                json={"id": f"w{n}-{tag}", "owner": "u", "name": "W", "currency": "USD"},
            ),
            201,
        )
        for n in (1, 2)
    ]
    ids["wallet_id"] = wallets[0]["id"]
    ids["other_wallet_id"] = wallets[1]["id"]
    top_up = ok(
        client.post(
            f"/v1/wallets/{wallets[0]['id']}/top_ups", json={"amount": 500, "settled": True}
        ),
        201,
    )
    ids["top_up_id"] = top_up["id"]
    spend = ok(
        client.post(
            f"/v1/wallets/{wallets[0]['id']}/spends", json={"amount": 100, "description": "x"}
        ),
        201,
    )
    ids["spend_id"] = spend["id"]
    transfer = ok(
        client.post(
            "/v1/wallet_transfers",
            json={
                "from_wallet_id": wallets[0]["id"],
                "to_wallet_id": wallets[1]["id"],
                "amount": 50,
            },
        ),
        201,
    )
    ids["transfer_id"] = transfer["id"]
    # Whatever a key creates is of its mode, and says so from the first answer.
    for made in (
        endpoint,
        seller,
        earning,
        ledger,
        *accounts,
        txn,
        *wallets,
        top_up,
        spend,
        transfer,
    ):
        assert made["livemode"] is livemode, made
    return World(livemode, ids)


def fill(path: str, ids: dict[str, str]) -> str:
    return PARAM.sub(lambda m: ids[m.group(1)], path)


def unknown_ids(world: World) -> dict[str, str]:
    ids = {k: f"nothing-{uuid.uuid4().hex[:6]}" for k in world.ids}
    for name, root in PATH_ROOTS.items():
        if root.is_uuid:
            ids[name] = str(uuid.uuid4())
    ids["statement_id"] = "stmt_nothing"
    ids["clock_id"] = "clock_nothing"
    return ids


def same_shape(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        return f"nothing-{uuid.uuid4().hex[:6]}"
    return str(uuid.uuid4())
