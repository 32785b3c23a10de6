"""Spends racing on one wallet from many threads at once, over HTTP: none overdraws. The wallet's
row lock queues them and the ledger's balance condition holds the line, so exactly the spends
that fit succeed, the rest are refused with ``insufficient_balance``, and the final balance is
the top-ups less the successful spends, never below zero. Transfers out race with them too."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.helpers import drifted_accounts
from tests.wallets.helpers import lots_remaining, new_wallet, spend, top_up, views

SPENDERS = 40
SPEND = 450


def test_racing_spends_never_overdraw(client: TestClient, engine: Engine) -> None:
    wallet = new_wallet(client)["id"]
    friend = new_wallet(client)["id"]
    later = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    top_ups = [
        top_up(client, wallet, 6_000, settled=True)["amount"],
        top_up(client, wallet, 4_000, settled=True, expires_at=later)["amount"],
    ]
    funded = sum(top_ups)
    outcomes: dict[int, int] = {}
    lock = threading.Lock()
    lowest = [funded]

    def one(n: int) -> None:
        if n % 10 == 9:  # every tenth racer sends money away instead
            response = client.post(
                "/v1/wallet_transfers",
                json={"from_wallet_id": wallet, "to_wallet_id": friend, "amount": SPEND},
            )
        else:
            response = spend(client, wallet, SPEND)
        available = views(client, wallet)[2]
        with lock:
            outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
            lowest[0] = min(lowest[0], available)
        if response.status_code == 422:
            assert response.json()["code"] == "insufficient_balance", response.text

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(one, range(SPENDERS)))

    succeeded, refused = outcomes.get(201, 0), outcomes.get(422, 0)
    assert succeeded + refused == SPENDERS, outcomes
    # Exactly what fits went through: 22 of 450 in 10,000; 18 refused.
    assert succeeded == funded // SPEND and refused == SPENDERS - funded // SPEND
    final = views(client, wallet)
    assert final == (funded - succeeded * SPEND,) * 3
    assert final[2] >= 0 and lowest[0] >= 0
    # The lots agree with the ledger, and the friend got every transfer that went through.
    assert lots_remaining(engine, wallet) == final[1]
    spends = client.get(f"/v1/wallets/{wallet}/spends", params={"per_page": 100}).json()["items"]
    sent = views(client, friend)[2]
    assert len(spends) * SPEND + sent == succeeded * SPEND
    with engine.connect() as conn:
        assert drifted_accounts(conn) == []


def test_the_ledger_condition_refuses_what_the_lots_would_allow(
    client: TestClient, engine: Engine
) -> None:
    """The balance condition is the backstop: lots that claim more than the ledger holds (a
    writer that got around the wallet's lock) still cannot take the wallet below zero."""
    wallet = new_wallet(client)["id"]
    lot = top_up(client, wallet, 1_000, settled=True)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE wallet_lots SET amount = 5000, remaining = 5000 WHERE id = :id"),
            {"id": lot["id"]},
        )
    refused = spend(client, wallet, 3_000)
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient_balance"
    assert views(client, wallet) == (1_000, 1_000, 1_000)
    assert client.get(f"/v1/wallets/{wallet}/spends").json()["items"] == []
    assert lots_remaining(engine, wallet) == 5_000  # the refused spend took nothing
