"""A wallet API key reads its own wallet and what it owns, nothing else: another wallet's
resources answer exactly as unknown ones (404, the same code and words), every write is a 403,
and the sellers' and ledger's routes are closed to it (as the wallets' are to a seller key)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.auth import ApiKeyRole
from tests.api.conftest import client_for, make_key
from tests.api.helpers import assert_problem
from tests.wallets.helpers import new_wallet, spend, top_up, wallet_key


def test_a_wallet_key_sees_its_own_wallet_only(
    app: FastAPI, client: TestClient, engine: Engine
) -> None:
    own, other, third = (new_wallet(client)["id"] for _ in range(3))
    own_lot = top_up(client, own, 1_000, settled=True)
    other_lot = top_up(client, other, 1_000, settled=True)
    own_spend = spend(client, own, 100).json()
    other_spend = spend(client, other, 100).json()
    mine = client.post(
        "/v1/wallet_transfers", json={"from_wallet_id": own, "to_wallet_id": other, "amount": 5}
    ).json()
    theirs = client.post(
        "/v1/wallet_transfers", json={"from_wallet_id": other, "to_wallet_id": third, "amount": 5}
    ).json()

    with client_for(app, wallet_key(engine, own)) as reader:
        assert reader.get(f"/v1/wallets/{own}").json()["id"] == own
        assert reader.get(f"/v1/wallets/{own}/balances").json()["available"]["amount"] == 895
        assert reader.get(f"/v1/wallets/{own}/top_ups/{own_lot['id']}").status_code == 200
        assert reader.get(f"/v1/wallets/{own}/spends/{own_spend['id']}").status_code == 200
        assert reader.get(f"/v1/wallet_transfers/{mine['id']}").json()["to_wallet_id"] == other

        # Another wallet, its lots and spends: the 404 of an unknown wallet, word for word.
        unknown = client.get("/v1/wallets/no-such-wallet").json()
        for path in (
            f"/v1/wallets/{other}",
            f"/v1/wallets/{other}/balances",
            f"/v1/wallets/{other}/top_ups",
            f"/v1/wallets/{other}/top_ups/{other_lot['id']}",
            f"/v1/wallets/{other}/spends/{other_spend['id']}",
        ):
            problem = assert_problem(reader.get(path), 404, "wallet_not_found")
            assert problem["detail"] == unknown["detail"].replace("no-such-wallet", other)
        # Its own wallet's path with another wallet's lot: unknown too.
        assert_problem(
            reader.get(f"/v1/wallets/{own}/top_ups/{other_lot['id']}"), 404, "top_up_not_found"
        )
        # A transfer it is no party to is as unknown as one that does not exist.
        hidden = assert_problem(
            reader.get(f"/v1/wallet_transfers/{theirs['id']}"), 404, "wallet_transfer_not_found"
        )
        missing = assert_problem(
            reader.get("/v1/wallet_transfers/wtr_nothing"), 404, "wallet_transfer_not_found"
        )
        assert hidden["detail"].replace(theirs["id"], "x") == missing["detail"].replace(
            "wtr_nothing", "x"
        )

        # Writes, even on its own wallet: 403 before anything is looked up.
        for path, body in (
            (f"/v1/wallets/{own}/spends", {"amount": 1, "description": "x"}),
            (f"/v1/wallets/{own}/top_ups", {"amount": 1, "settled": True}),
            (f"/v1/wallets/{own}/spends/{own_spend['id']}/refunds", {}),
            ("/v1/wallet_transfers", {"from_wallet_id": own, "to_wallet_id": other, "amount": 1}),
        ):
            assert_problem(reader.post(path, json=body), 403, "forbidden")
        # No seller, ledger or event routes.
        for path in ("/v1/sellers", "/v1/events", "/v1/ledger_accounts"):
            assert_problem(reader.get(path), 403, "forbidden")
    assert client.get(f"/v1/wallets/{own}/balances").json()["available"]["amount"] == 895

    # A seller key has no access to wallets at all.
    with client_for(app, make_key(engine, ApiKeyRole.SELLER, "some-seller")) as seller:
        assert_problem(seller.get(f"/v1/wallets/{own}"), 403, "forbidden")
