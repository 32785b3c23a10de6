"""The webhook API: endpoints (secret shown once), events with pagination and seller scoping,
deliveries, and their errors as problem+json."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.auth import ApiKeyRole
from api.problems import PROBLEM_JSON
from marketplace import Marketplace
from tests.api.conftest import client_for, make_key
from tests.webhooks.conftest import new_seller

market = Marketplace()


@pytest.fixture(scope="module")
def api_app(engine: Engine) -> Any:
    return create_app(engine)


@pytest.fixture
def admin(api_app: Any, engine: Engine) -> Iterator[TestClient]:
    created: list[str] = []
    with client_for(api_app, make_key(engine, ApiKeyRole.ADMIN)) as client:
        client.created = created  # type: ignore[attr-defined]
        yield client
        for endpoint_id in created:
            client.delete(f"/v1/webhook_endpoints/{endpoint_id}")


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def test_an_endpoint_shows_its_secret_once_and_can_be_deleted(admin: TestClient) -> None:
    created = admin.post(
        "/v1/webhook_endpoints",
        json={
            "url": "https://hooks.example.test/payouts",
            "event_types": ["payout.paid", "payout.failed", "payout.paid"],
            "description": "finance",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    admin.created.append(body["id"])  # type: ignore[attr-defined]
    assert body["secret"].startswith("whsec_") and len(body["secret"]) >= 38
    assert body["event_types"] == ["payout.paid", "payout.failed"]
    assert body["status"] == "enabled"

    shown = admin.get(f"/v1/webhook_endpoints/{body['id']}")
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert body["secret"] not in shown.text
    listed = admin.get("/v1/webhook_endpoints", params={"per_page": 100}).json()["items"]
    assert body["id"] in [e["id"] for e in listed]
    assert all("secret" not in e for e in listed)

    deleted = admin.delete(f"/v1/webhook_endpoints/{body['id']}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert admin.delete(f"/v1/webhook_endpoints/{body['id']}").json()["status"] == "deleted"
    live = admin.get("/v1/webhook_endpoints", params={"per_page": 100}).json()["items"]
    assert body["id"] not in [e["id"] for e in live]
    everything = admin.get(
        "/v1/webhook_endpoints", params={"per_page": 100, "include_deleted": True}
    ).json()["items"]
    assert body["id"] in [e["id"] for e in everything]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "ftp://example.test/x", "event_types": ["*"]}, "url"),
        ({"url": "https://", "event_types": ["*"]}, "url"),
        ({"url": "https://example.test/a b", "event_types": ["*"]}, "url"),
        ({"url": "https://example.test/x", "event_types": []}, "event_types"),
        ({"url": "https://example.test/x", "event_types": ["payout.teleported"]}, "event_types"),
        ({"url": "https://example.test/x", "event_types": "*"}, "event_types"),
        ({"url": "https://example.test/x", "event_types": ["*"], "secret": "mine"}, "secret"),
    ],
)
def test_bad_endpoints_are_refused(admin: TestClient, payload: dict[str, Any], field: str) -> None:
    before = len(admin.get("/v1/webhook_endpoints", params={"per_page": 100}).json()["items"])
    body = problem(admin.post("/v1/webhook_endpoints", json=payload), 422, "validation_error")
    assert field in str(body)
    after = len(admin.get("/v1/webhook_endpoints", params={"per_page": 100}).json()["items"])
    assert after == before


def test_events_are_listed_oldest_first_page_by_page_and_a_seller_sees_its_own(
    admin: TestClient, api_app: Any, engine: Engine
) -> None:
    seller, other = new_seller(engine), new_seller(engine)
    with engine.begin() as conn:
        for i in range(3):
            market.book_earning(conn, seller_id=seller, order_id=f"o-{seller}-{i}", amount=10)
            market.post_earning(conn, seller, f"o-{seller}-{i}")
        market.book_earning(conn, seller_id=other, order_id=f"o-{other}", amount=10)

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"seller_id": seller, "per_page": 4}
        if cursor:
            params["after_cursor"] = cursor
        page = admin.get("/v1/events", params=params)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        assert cursor == page.headers.get("x-after-cursor")
        if cursor is None:
            break
    assert [e["sequence"] for e in seen] == list(range(1, 10))
    assert {e["type"] for e in seen} == {
        "earning.created",
        "earning.posted",
        "balance.available_changed",
    }
    posted = admin.get(
        "/v1/events", params={"seller_id": seller, "type": ["earning.posted"], "per_page": 100}
    ).json()["items"]
    assert [e["data"]["object"]["order_id"] for e in posted] == [
        f"o-{seller}-{i}" for i in range(3)
    ]
    assert admin.get(f"/v1/events/{seen[0]['id']}").json() == seen[0]

    with client_for(api_app, make_key(engine, ApiKeyRole.SELLER, seller)) as own:
        mine = own.get("/v1/events", params={"per_page": 100}).json()["items"]
        assert {e["seller_id"] for e in mine} == {seller} and len(mine) == 9
        problem(own.get("/v1/events", params={"seller_id": other}), 404, "seller_not_found")
        theirs = admin.get("/v1/events", params={"seller_id": other}).json()["items"][0]
        problem(own.get(f"/v1/events/{theirs['id']}"), 404, "event_not_found")
    problem(admin.get("/v1/events", params={"type": "earning.exploded"}), 422, "validation_error")
    problem(admin.get("/v1/events", params={"after_cursor": "bm9wZQ"}), 422, "invalid_cursor")
    problem(admin.get("/v1/events/evt_nope"), 404, "event_not_found")


def test_deliveries_errors(admin: TestClient, engine: Engine) -> None:
    problem(admin.get("/v1/webhook_deliveries/whd_nope"), 404, "webhook_delivery_not_found")
    problem(admin.post("/v1/webhook_deliveries/whd_nope/resend"), 404, "webhook_delivery_not_found")
    problem(admin.get("/v1/webhook_endpoints/we_nope"), 404, "webhook_endpoint_not_found")
    problem(admin.delete("/v1/webhook_endpoints/we_nope"), 404, "webhook_endpoint_not_found")
    problem(admin.get("/v1/webhook_deliveries", params={"status": "lost"}), 422, "validation_error")

    endpoint = admin.post(
        "/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/x", "event_types": ["*"]}
    ).json()
    seller = new_seller(engine)
    with engine.begin() as conn:
        market.book_earning(conn, seller_id=seller, order_id=f"o-{seller}", amount=10)
    admin.delete(f"/v1/webhook_endpoints/{endpoint['id']}")
    (delivery,) = admin.get(
        "/v1/webhook_deliveries", params={"endpoint_id": endpoint["id"]}
    ).json()["items"]
    assert delivery["status"] == "cancelled" and delivery["seller_id"] == seller
    problem(
        admin.post(f"/v1/webhook_deliveries/{delivery['id']}/resend"), 409, "invalid_delivery_state"
    )
