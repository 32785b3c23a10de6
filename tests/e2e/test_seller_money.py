"""DESIGN.md's "The seller's money, step by step", 1 to 3, end to end over HTTP: the API, the hold
and dispute workflows on a real Temporal dev server, the worker's activities on PostgreSQL. The
balances are read through ``GET /v1/sellers/{id}/balances`` at every step."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from api.auth import ApiKeyRole
from tests.api.helpers import assert_problem
from tests.e2e.conftest import Stack, add_earning, balances, create_seller, money
from tests.helpers import eventually

HOLD = "PT2S"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def holds(client: httpx.AsyncClient, seller_id: str) -> list[dict[str, object]]:
    response = await client.get(f"/v1/sellers/{seller_id}/holds")
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


async def test_earning_hold_and_chargebacks_won_and_lost(
    admin: httpx.AsyncClient, uid: str
) -> None:
    seller, order = f"shop-{uid}", f"order-{uid}"
    created = await create_seller(admin, seller, hold_period=HOLD)
    assert created["hold_period"] == HOLD
    assert created["hold_workflow_id"] == f"seller-holds/{seller}"
    assert await balances(admin, seller) == money(0, 0, 0)

    # 1. Earning: a pending transaction; pending grows, posted and available do not.
    earning = await add_earning(admin, seller, order, 10_000, fee=1_000)
    assert (earning["status"], earning["net"]) == ("on_hold", 9_000)
    hold_until = at(earning["hold_until"])
    assert await balances(admin, seller) == money(9_000, 0, 0, on_hold=9_000)
    [hold] = await holds(admin, seller)
    assert (hold["order_id"], hold["kind"], hold["amount_held"]) == (order, "earning", 9_000)
    assert at(str(hold["ends_at"])) == hold_until

    # 2. The hold ends: the workflow posts it; posted grows, and with nothing holding it back
    #    (3.) it is available.
    async def posted() -> None:
        assert await balances(admin, seller) == money(9_000, 9_000, 9_000)

    await eventually(posted)
    fetched = (await admin.get(f"/v1/sellers/{seller}/earnings/{order}")).json()
    assert fetched["status"] == "posted"
    assert at(fetched["posted_at"]) >= hold_until
    assert await eventually(lambda: _no_holds(admin, seller)) is None

    # 3. A chargeback: a pending debit; available drops, posted does not.
    opened = await admin.post(
        "/v1/disputes",
        json={"id": f"cb1-{uid}", "seller_id": seller, "order_id": order, "amount": 3_000},
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["status"] == "open"
    assert await balances(admin, seller) == money(6_000, 9_000, 6_000, in_dispute=3_000)

    #    Won: the debit is archived, available is back.
    won = await admin.post(f"/v1/disputes/cb1-{uid}/resolve", json={"outcome": "won"})
    assert won.status_code == 200, won.text
    assert won.json()["status"] == "won"
    assert await balances(admin, seller) == money(9_000, 9_000, 9_000)
    again = await admin.post(f"/v1/disputes/cb1-{uid}/resolve", json={"outcome": "won"})
    assert again.status_code == 200 and again.json()["status"] == "won"
    assert_problem(
        await admin.post(f"/v1/disputes/cb1-{uid}/resolve", json={"outcome": "lost"}),
        409,
        "dispute_already_resolved",
    )

    #    Lost: the debit is posted, posted drops.
    opened = await admin.post(
        "/v1/disputes",
        json={
            "id": f"cb2-{uid}",
            "seller_id": seller,
            "order_id": order,
            "amount": 2_000,
            "reason": "fraudulent",
        },
    )
    assert opened.status_code == 201, opened.text
    assert await balances(admin, seller) == money(7_000, 9_000, 7_000, in_dispute=2_000)
    lost = await admin.post(f"/v1/disputes/cb2-{uid}/resolve", json={"outcome": "lost"})
    assert lost.json()["status"] == "lost", lost.text
    assert await balances(admin, seller) == money(7_000, 7_000, 7_000)

    fetched_dispute = (await admin.get(f"/v1/disputes/cb2-{uid}")).json()
    assert (fetched_dispute["status"], fetched_dispute["reason"]) == ("lost", "fraudulent")
    listed = (await admin.get("/v1/disputes", params={"seller_id": seller})).json()["items"]
    assert [d["id"] for d in listed] == [f"cb1-{uid}", f"cb2-{uid}"]
    # Opening the same dispute again returns it as it is now.
    replay = await admin.post(
        "/v1/disputes",
        json={"id": f"cb2-{uid}", "seller_id": seller, "order_id": order, "amount": 2_000},
    )
    assert (replay.status_code, replay.json()["status"]) == (200, "lost")
    assert_problem(
        await admin.post(
            "/v1/disputes",
            json={"id": f"cb2-{uid}", "seller_id": seller, "order_id": order, "amount": 2_001},
        ),
        409,
        "dispute_conflict",
    )


async def _no_holds(client: httpx.AsyncClient, seller_id: str) -> None:
    assert await holds(client, seller_id) == []


async def test_rolling_reserve_keeps_posted_money_unavailable_until_its_period_ends(
    admin: httpx.AsyncClient, uid: str
) -> None:
    seller, order = f"reserved-{uid}", f"order-{uid}"
    created = await create_seller(
        admin, seller, hold_period=HOLD, rolling_reserve={"percent": 10, "period": "PT3S"}
    )
    assert created["rolling_reserve"] == {"percent": 10.0, "period": "PT3S"}

    earning = await add_earning(admin, seller, order, 20_000, fee=0)
    assert earning["reserve_amount"] == 2_000
    assert await balances(admin, seller) == money(20_000, 0, 0, on_hold=20_000)

    # The hold ends: posted grows by all of it, available by all but the reserve.
    async def reserved() -> None:
        assert await balances(admin, seller) == money(18_000, 20_000, 18_000, in_reserve=2_000)

    await eventually(reserved)
    [reserve] = await eventually(lambda: _one_reserve(admin, seller))
    assert reserve["amount_held"] == 2_000
    fetched = (await admin.get(f"/v1/sellers/{seller}/earnings/{order}")).json()
    assert at(str(reserve["ends_at"])) == at(fetched["reserve_release_at"])

    # The reserve period ends: the reserve is released, all of it is available.
    async def released() -> None:
        assert await balances(admin, seller) == money(20_000, 20_000, 20_000)

    await eventually(released)
    assert await eventually(lambda: _no_holds(admin, seller)) is None


async def _one_reserve(client: httpx.AsyncClient, seller_id: str) -> list[dict[str, object]]:
    items = await holds(client, seller_id)
    assert [h["kind"] for h in items] == ["reserve"], items
    return items


async def test_operators_release_extend_and_cancel_holds(
    admin: httpx.AsyncClient, stack: Stack, uid: str
) -> None:
    seller, other = f"steer-{uid}", f"steer-other-{uid}"
    await create_seller(admin, seller, hold_period="P1D")
    await create_seller(admin, other, hold_period="P1D")
    first, second, third = (f"o{n}-{uid}" for n in (1, 2, 3))
    e1 = await add_earning(admin, seller, first, 1_000)
    e2 = await add_earning(admin, seller, second, 2_000)
    await add_earning(admin, seller, third, 4_000)
    await add_earning(admin, other, f"x-{uid}", 500)
    assert await balances(admin, seller) == money(7_000, 0, 0, on_hold=7_000)
    assert [h["order_id"] for h in await holds(admin, seller)] == [first, second, third]
    assert at(e1["hold_until"]) - datetime.now(UTC) > timedelta(hours=23)

    # Release: posts now.
    released = await admin.post(f"/v1/sellers/{seller}/holds/{first}/release")
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "posted"
    assert await balances(admin, seller) == money(7_000, 1_000, 1_000, on_hold=6_000)
    assert_problem(
        await admin.post(f"/v1/sellers/{seller}/holds/{first}/release"), 409, "invalid_hold_state"
    )

    # Extend: only later.
    current = at(e2["hold_until"])
    earlier = await admin.post(
        f"/v1/sellers/{seller}/holds/{second}/extend",
        json={"hold_until": (current - timedelta(hours=1)).isoformat()},
    )
    assert_problem(earlier, 422, "validation_failed")
    same = await admin.post(
        f"/v1/sellers/{seller}/holds/{second}/extend",
        json={"hold_until": current.isoformat()},
    )
    assert_problem(same, 422, "validation_failed")
    naive = await admin.post(
        f"/v1/sellers/{seller}/holds/{second}/extend", json={"hold_until": "2030-01-01T00:00:00"}
    )
    assert_problem(naive, 422, "validation_error")
    later = current + timedelta(days=2)
    extended = await admin.post(
        f"/v1/sellers/{seller}/holds/{second}/extend", json={"hold_until": later.isoformat()}
    )
    assert extended.status_code == 200, extended.text
    assert at(extended.json()["hold_until"]) == later

    async def extended_in_workflow() -> None:
        by_order = {h["order_id"]: h for h in await holds(admin, seller)}
        assert at(str(by_order[second]["ends_at"])) == later

    await eventually(extended_in_workflow)

    # Cancel: a refund during the hold; the pending earning is archived.
    cancelled = await admin.post(f"/v1/sellers/{seller}/holds/{third}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert await balances(admin, seller) == money(3_000, 1_000, 1_000, on_hold=2_000)
    assert_problem(
        await admin.post(f"/v1/sellers/{seller}/holds/{third}/cancel"), 409, "invalid_hold_state"
    )
    assert_problem(
        await admin.post(f"/v1/sellers/{seller}/holds/{third}/release"), 409, "invalid_hold_state"
    )

    # Unknown orders, and orders of another seller, have no hold here.
    assert_problem(
        await admin.post(f"/v1/sellers/{seller}/holds/nope-{uid}/release"), 404, "hold_not_found"
    )
    assert_problem(
        await admin.post(f"/v1/sellers/{seller}/holds/x-{uid}/cancel"), 404, "hold_not_found"
    )
    assert_problem(
        await admin.post(f"/v1/sellers/nobody-{uid}/holds/x-{uid}/cancel"),
        404,
        "seller_not_found",
    )
    assert [h["order_id"] for h in await holds(admin, seller)] == [second]
    assert await balances(admin, other) == money(500, 0, 0, on_hold=500)
    # An operator key may steer holds too.
    async with stack.client(stack.key(ApiKeyRole.OPERATOR)) as operator:
        response = await operator.post(f"/v1/sellers/{other}/holds/x-{uid}/release")
        assert response.status_code == 200, response.text
    assert await balances(admin, other) == money(500, 500, 500)


async def test_retried_earnings_book_exactly_once(admin: httpx.AsyncClient, uid: str) -> None:
    seller = f"retry-{uid}"
    await create_seller(admin, seller, hold_period="P1D")
    url = f"/v1/sellers/{seller}/earnings"

    # With an Idempotency-Key: the first response is replayed.
    body = {"order_id": f"k-{uid}", "amount": 1_500, "fee": 100, "metadata": {"sku": "mug"}}
    headers = {"Idempotency-Key": f"key-{uid}"}
    first = await admin.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    replay = await admin.post(url, json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["Idempotency-Replayed"] == "true"
    assert replay.json() == first.json()
    assert first.json()["metadata"] == {"sku": "mug"}

    # Without a key: the same order again returns the same earning (200), not a second one.
    plain = {"order_id": f"p-{uid}", "amount": 2_500}
    booked = await admin.post(url, json=plain)
    assert booked.status_code == 201, booked.text
    again = await admin.post(url, json=plain)
    assert again.status_code == 200
    assert again.json() == booked.json()

    # Duplicates racing each other (a webhook delivered several times at once).
    racing = {"order_id": f"r-{uid}", "amount": 3_500}
    answers = await asyncio.gather(*(admin.post(url, json=racing) for _ in range(6)))
    assert {a.status_code for a in answers} <= {200, 201}, [a.text for a in answers]
    assert len({a.json()["ledger_transaction_id"] for a in answers}) == 1

    # Another amount (or fee) for a booked order is a conflict, and changes nothing.
    assert_problem(await admin.post(url, json={**plain, "amount": 2_501}), 409, "earning_conflict")
    assert_problem(await admin.post(url, json={**plain, "fee": 1}), 409, "earning_conflict")

    assert await balances(admin, seller) == money(
        1_400 + 2_500 + 3_500, 0, 0, on_hold=1_400 + 2_500 + 3_500
    )
    listed = (await admin.get(url)).json()["items"]
    assert sorted(e["order_id"] for e in listed) == sorted([f"k-{uid}", f"p-{uid}", f"r-{uid}"])
    for order in (f"k-{uid}", f"p-{uid}", f"r-{uid}"):
        found = await admin.get(
            "/v1/ledger_transactions", params={"external_id": f"earning:{seller}/{order}"}
        )
        assert len(found.json()["items"]) == 1, found.text
    assert len(await holds(admin, seller)) == 3


async def test_an_order_paying_several_sellers(admin: httpx.AsyncClient, uid: str) -> None:
    """A multi-seller cart: one order id, an earning per seller, each on its seller's hold,
    read, refunded and paid under that seller only."""
    quick, slow, order = f"cart-quick-{uid}", f"cart-slow-{uid}", f"cart-{uid}"
    await create_seller(admin, quick, hold_period=HOLD)
    await create_seller(admin, slow, hold_period="P1D")
    response = await admin.post(
        "/v1/earnings/batch",
        json={
            "earnings": [
                {"seller_id": quick, "order_id": order, "amount": 6_000, "fee": 600},
                {"seller_id": slow, "order_id": order, "amount": 4_000, "fee": 400},
            ]
        },
    )
    assert response.status_code == 200, response.text
    batch = response.json()
    assert [r["status"] for r in batch["results"]] == [201, 201]
    assert (batch["created"], batch["existing"], batch["failed"]) == (2, 0, 0)
    # The same order booked again for one of them, one by one: that seller's earning, as it was.
    again = await admin.post(
        f"/v1/sellers/{slow}/earnings", json={"order_id": order, "amount": 4_000, "fee": 400}
    )
    assert again.status_code == 200, again.text
    assert again.json() == batch["results"][1]["earning"]

    quick_earning = (await admin.get(f"/v1/sellers/{quick}/earnings/{order}")).json()
    slow_earning = (await admin.get(f"/v1/sellers/{slow}/earnings/{order}")).json()
    assert (quick_earning["seller_id"], quick_earning["net"]) == (quick, 5_400)
    assert (slow_earning["seller_id"], slow_earning["net"]) == (slow, 3_600)
    assert quick_earning["ledger_transaction_id"] != slow_earning["ledger_transaction_id"]
    for seller in (quick, slow):
        found = await admin.get(
            "/v1/ledger_transactions", params={"external_id": f"earning:{seller}/{order}"}
        )
        assert len(found.json()["items"]) == 1, found.text

    # Each hold is its seller's: the quick one posts, the slow one stays on hold.
    async def quick_posted() -> None:
        assert await balances(admin, quick) == money(5_400, 5_400, 5_400)

    await eventually(quick_posted)
    assert await balances(admin, slow) == money(3_600, 0, 0, on_hold=3_600)
    assert [h["order_id"] for h in await holds(admin, slow)] == [order]

    # A refund of each seller's share: two refunds of one order, each its seller's. (One
    # Idempotency-Key names one request: sent again for the other seller, it is refused.)
    refunds = []
    for seller, amount in ((quick, 3_000), (slow, 4_000)):
        refunded = await admin.post(
            f"/v1/sellers/{seller}/earnings/{order}/refund",
            json={"amount": amount},
            headers={"Idempotency-Key": f"refund-{seller}"},
        )
        assert refunded.status_code == 201, refunded.text
        assert refunded.json()["seller_id"] == seller
        refunds.append(refunded.json())
    assert refunds[0]["id"] != refunds[1]["id"]
    reused = await admin.post(
        f"/v1/sellers/{slow}/earnings/{order}/refund",
        json={"amount": 3_000},
        headers={"Idempotency-Key": f"refund-{quick}"},
    )
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"
    assert (refunds[0]["kind"], refunds[0]["seller_amount"]) == ("after_posting", 2_700)
    assert refunds[1]["earning_status"] == "cancelled"
    assert await balances(admin, quick) == money(2_700, 2_700, 2_700)
    assert await balances(admin, slow) == money(0, 0, 0)
    assert await holds(admin, slow) == []
