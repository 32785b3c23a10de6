"""A test clock over a wallet's expiring money, end to end through the API and the real expiry
workflow: the lot expires when the clock passes its expiry, at that time, and not before."""

from __future__ import annotations

import httpx

from tests.api.helpers import assert_problem
from tests.test_clocks.conftest import START, advance, at, create_clock


async def wallet_money(client: httpx.AsyncClient, wallet_id: str) -> tuple[int, int]:
    """(available, expiring)"""
    body = (await client.get(f"/v1/wallets/{wallet_id}/balances")).json()
    return body["available"]["amount"], body["expiring"]


async def test_a_lot_expires_when_the_clock_passes_its_expiry(
    admin: httpx.AsyncClient, uid: str
) -> None:
    clock_id, wallet = f"clock-{uid}", f"wallet-{uid}"
    await create_clock(admin, clock_id)
    response = await admin.post(
        "/v1/wallets",
        json={
            "id": wallet,
            "owner": "user-1",
            "name": "Promo",
            "currency": "USD",
            "test_clock": clock_id,
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["test_clock"] == clock_id
    expires_at = "2030-01-10T00:00:00+00:00"  # in the clock's future, the wall clock's past
    response = await admin.post(
        f"/v1/wallets/{wallet}/top_ups",
        json={"amount": 2_500, "settled": True, "expires_at": expires_at},
    )
    assert response.status_code == 201, response.text
    lot = response.json()
    assert at(lot["settled_at"]) == at(START)
    txn = await admin.get(f"/v1/ledger_transactions/{lot['ledger_transaction_id']}")
    assert at(txn.json()["effective_at"]) == at(START)
    await admin.post(f"/v1/wallets/{wallet}/top_ups", json={"amount": 500, "settled": True})
    assert await wallet_money(admin, wallet) == (3_000, 2_500)

    await advance(admin, clock_id, "2030-01-09T23:00:00+00:00")
    assert await wallet_money(admin, wallet) == (3_000, 2_500)

    await advance(admin, clock_id, "2030-01-20T00:00:00+00:00")
    assert await wallet_money(admin, wallet) == (500, 0)
    expired = (await admin.get(f"/v1/wallets/{wallet}/top_ups/{lot['id']}")).json()
    assert (expired["status"], expired["expired_amount"]) == ("expired", 2_500)
    assert at(expired["expired_at"]) == at(expires_at)


async def test_no_transfer_between_a_clocked_and_a_live_wallet(
    admin: httpx.AsyncClient, uid: str
) -> None:
    clock_id = f"clock-{uid}"
    await create_clock(admin, clock_id)
    for wallet, clock in ((f"clocked-{uid}", clock_id), (f"live-{uid}", None)):
        body = {"id": wallet, "owner": "u", "name": "W", "currency": "USD", "test_clock": clock}
        assert (await admin.post("/v1/wallets", json=body)).status_code == 201
    await admin.post(f"/v1/wallets/clocked-{uid}/top_ups", json={"amount": 100, "settled": True})
    refused = await admin.post(
        "/v1/wallet_transfers",
        json={"from_wallet_id": f"clocked-{uid}", "to_wallet_id": f"live-{uid}", "amount": 50},
    )
    assert_problem(refused, 422, "validation_failed")
