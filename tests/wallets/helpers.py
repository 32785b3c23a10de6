"""Helpers of the wallet tests: wallets created over HTTP, wallet keys, balances, events."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.auth import ApiKeyRole, create_api_key


def new_wallet(client: TestClient, currency: str = "USD", **extra: Any) -> dict[str, Any]:
    body = {"owner": f"user-{uuid.uuid4().hex[:8]}", "name": "Wallet", "currency": currency}
    response = client.post("/v1/wallets", json={**body, **extra})
    assert response.status_code == 201, response.text
    wallet: dict[str, Any] = response.json()
    return wallet


def top_up(client: TestClient, wallet_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    response = client.post(f"/v1/wallets/{wallet_id}/top_ups", json={"amount": amount, **extra})
    assert response.status_code == 201, response.text
    lot: dict[str, Any] = response.json()
    return lot


def spend(client: TestClient, wallet_id: str, amount: int, **headers: str) -> Any:
    return client.post(
        f"/v1/wallets/{wallet_id}/spends",
        json={"amount": amount, "description": "coffee"},
        headers=headers,
    )


def views(client: TestClient, wallet_id: str) -> tuple[int, int, int]:
    """(pending, posted, available) of the wallet, over HTTP."""
    response = client.get(f"/v1/wallets/{wallet_id}/balances")
    assert response.status_code == 200, response.text
    b = response.json()
    return (b["pending"]["amount"], b["posted"]["amount"], b["available"]["amount"])


def wallet_key(engine: Engine, wallet_id: str) -> str:
    with engine.begin() as conn:
        key, _ = create_api_key(
            conn, role=ApiKeyRole.WALLET, wallet_id=wallet_id, name="test wallet key"
        )
    return key


def event_types(engine: Engine, wallet_id: str) -> list[str]:
    """The wallet's events in the outbox, in sequence order."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT type FROM events WHERE seller_id = :s ORDER BY sequence"),
            {"s": f"wallet/{wallet_id}"},
        ).all()
    return [r.type for r in rows]


def lots_remaining(engine: Engine, wallet_id: str) -> int:
    """What the wallet's settled lots hold: always its posted balance."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT coalesce(sum(remaining), 0) FROM wallet_lots "
                    "WHERE wallet_id = :w AND status = 'settled'"
                ),
                {"w": wallet_id},
            ).scalar_one()
        )
