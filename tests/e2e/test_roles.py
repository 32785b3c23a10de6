"""Every seller, earning, hold and dispute route with each role, on the live stack: admin and
operator keys do everything; a seller key reads its own seller's resources, gets a 404 (the same
answer as for something that does not exist) for another seller's, and a 403 for every write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.auth import ApiKeyRole
from tests.api.helpers import assert_problem
from tests.e2e.conftest import Stack, add_earning, create_seller


async def _setup(admin: httpx.AsyncClient, uid: str) -> dict[str, str]:
    """Sellers own and other, each with an earning on hold and an open dispute."""
    ids = {
        "own": f"own-{uid}",
        "other": f"other-{uid}",
        "own_order": f"own-o-{uid}",
        "other_order": f"other-o-{uid}",
        "own_dispute": f"own-d-{uid}",
        "other_dispute": f"other-d-{uid}",
    }
    for who in ("own", "other"):
        await create_seller(admin, ids[who], hold_period="P1D")
        await add_earning(admin, ids[who], ids[f"{who}_order"], 5_000)
        response = await admin.post(
            "/v1/disputes",
            json={
                "id": ids[f"{who}_dispute"],
                "seller_id": ids[who],
                "order_id": ids[f"{who}_order"],
                "amount": 100,
            },
        )
        assert response.status_code == 201, response.text
    return ids


def _reads(ids: dict[str, str], seller: str, order: str, dispute: str) -> list[str]:
    return [
        f"/v1/sellers/{seller}",
        f"/v1/sellers/{seller}/balances",
        f"/v1/sellers/{seller}/earnings",
        f"/v1/sellers/{seller}/earnings/{order}",
        f"/v1/sellers/{seller}/holds",
        f"/v1/disputes/{dispute}",
    ]


@pytest.mark.parametrize("role", [ApiKeyRole.ADMIN, ApiKeyRole.OPERATOR])
async def test_platform_keys_use_every_route(
    stack: Stack, admin: httpx.AsyncClient, uid: str, role: ApiKeyRole
) -> None:
    ids = await _setup(admin, uid)
    async with stack.client(stack.key(role)) as client:
        for who in ("own", "other"):
            for path in _reads(ids, ids[who], ids[f"{who}_order"], ids[f"{who}_dispute"]):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
        listed = await client.get("/v1/sellers", params={"per_page": 100})
        assert listed.status_code == 200
        disputes = await client.get("/v1/disputes", params={"seller_id": ids["other"]})
        assert [d["id"] for d in disputes.json()["items"]] == [ids["other_dispute"]]

        writes: list[tuple[str, dict[str, Any] | None, int]] = [
            ("/v1/sellers", {"id": f"new-{uid}", "name": "New", "currency": "USD"}, 201),
            (
                f"/v1/sellers/{ids['own']}/earnings",
                {"order_id": f"w1-{uid}", "amount": 700},
                201,
            ),
            (
                f"/v1/sellers/{ids['own']}/earnings",
                {"order_id": f"w2-{uid}", "amount": 800},
                201,
            ),
            (
                f"/v1/sellers/{ids['own']}/earnings",
                {"order_id": f"w3-{uid}", "amount": 900},
                201,
            ),
            (f"/v1/sellers/{ids['own']}/holds/w1-{uid}/release", None, 200),
            (
                f"/v1/sellers/{ids['own']}/holds/w2-{uid}/extend",
                {"hold_until": (datetime.now(UTC) + timedelta(days=3)).isoformat()},
                200,
            ),
            (f"/v1/sellers/{ids['own']}/holds/w3-{uid}/cancel", None, 200),
            (
                "/v1/disputes",
                {"seller_id": ids["own"], "order_id": ids["own_order"], "amount": 50},
                201,
            ),
            (f"/v1/disputes/{ids['own_dispute']}/resolve", {"outcome": "won"}, 200),
        ]
        for path, body, status in writes:
            response = await client.post(path, json=body)
            assert response.status_code == status, (path, response.text)
        patched = await client.patch(f"/v1/sellers/{ids['own']}", json={"hold_period": "PT1H"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["hold_period"] == "PT1H"


async def test_a_seller_key_reads_its_own_seller_only_and_writes_nothing(
    stack: Stack, admin: httpx.AsyncClient, uid: str
) -> None:
    ids = await _setup(admin, uid)
    async with stack.client(stack.key(ApiKeyRole.SELLER, ids["own"])) as seller:
        for path in _reads(ids, ids["own"], ids["own_order"], ids["own_dispute"]):
            response = await seller.get(path)
            assert response.status_code == 200, (path, response.text)

        # Another seller's resources are answered exactly like unknown ones.
        other = _reads(ids, ids["other"], ids["other_order"], ids["other_dispute"])
        unknown = _reads(ids, f"ghost-{uid}", f"ghost-o-{uid}", f"ghost-d-{uid}")
        codes = [
            "seller_not_found",
            "seller_not_found",
            "seller_not_found",
            "seller_not_found",
            "seller_not_found",
            "dispute_not_found",
        ]
        for theirs, nobodys, code in zip(other, unknown, codes, strict=True):
            seen = assert_problem(await seller.get(theirs), 404, code)
            ghost = assert_problem(await seller.get(nobodys), 404, code)
            assert seen.keys() == ghost.keys(), (seen, ghost)
        # Its own seller, but another seller's order: as unknown as any order.
        assert_problem(
            await seller.get(f"/v1/sellers/{ids['own']}/earnings/{ids['other_order']}"),
            404,
            "earning_not_found",
        )

        listed = (await seller.get("/v1/sellers")).json()["items"]
        assert [s["id"] for s in listed] == [ids["own"]]
        disputes = (await seller.get("/v1/disputes")).json()["items"]
        assert [d["id"] for d in disputes] == [ids["own_dispute"]]
        snooping = await seller.get("/v1/disputes", params={"seller_id": ids["other"]})
        assert snooping.json()["items"] == []

        # Every write is a 403, on its own seller as on another, before anything is looked up.
        for target, order, dispute in (
            (ids["own"], ids["own_order"], ids["own_dispute"]),
            (ids["other"], ids["other_order"], ids["other_dispute"]),
        ):
            writes: list[tuple[str, dict[str, Any] | None]] = [
                ("/v1/sellers", {"id": f"mine-{uid}", "name": "Mine", "currency": "USD"}),
                (f"/v1/sellers/{target}/earnings", {"order_id": f"s-{uid}", "amount": 100}),
                (f"/v1/sellers/{target}/holds/{order}/release", None),
                (
                    f"/v1/sellers/{target}/holds/{order}/extend",
                    {"hold_until": "2099-01-01T00:00:00Z"},
                ),
                (f"/v1/sellers/{target}/holds/{order}/cancel", None),
                ("/v1/disputes", {"seller_id": target, "order_id": order, "amount": 1}),
                (f"/v1/disputes/{dispute}/resolve", {"outcome": "won"}),
            ]
            for path, body in writes:
                assert_problem(await seller.post(path, json=body), 403, "forbidden")
            assert_problem(
                await seller.patch(f"/v1/sellers/{target}", json={"name": "Hacked"}),
                403,
                "forbidden",
            )
        # The raw ledger is for platform keys.
        assert_problem(await seller.get("/v1/ledgers"), 403, "forbidden")

    # Nothing changed.
    earning = (await admin.get(f"/v1/sellers/{ids['own']}/earnings/{ids['own_order']}")).json()
    assert earning["status"] == "on_hold"
    assert (await admin.get(f"/v1/disputes/{ids['own_dispute']}")).json()["status"] == "open"
    assert (await admin.get(f"/v1/sellers/{ids['own']}")).json()["name"] == f"Shop {ids['own']}"
    assert_problem(await admin.get(f"/v1/sellers/mine-{uid}"), 404, "seller_not_found")
