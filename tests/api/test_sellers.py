"""Sellers, earnings and disputes routes: what the API answers by itself, before and without any
workflow (validation, 404s and 409s from the database, pagination, PATCH), and the 503 when
Temporal is out of reach. The flows through the workflows are in tests/e2e."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from api.schemas.common import format_duration, parse_duration
from marketplace import Marketplace
from tests.api.helpers import assert_problem


def create(client: TestClient, seller_id: str, **terms: Any) -> dict[str, Any]:
    body = {"id": seller_id, "name": f"Shop {seller_id}", "currency": "USD", **terms}
    response = client.post("/v1/sellers", json=body)
    assert response.status_code == 201, response.text
    seller: dict[str, Any] = response.json()
    return seller


def book(engine: Engine, seller_id: str, order_id: str, amount: int, fee: int = 0) -> None:
    """An earning booked in the database, as the hold workflow's activity would."""
    with engine.begin() as conn:
        Marketplace().book_earning(
            conn, seller_id=seller_id, order_id=order_id, amount=amount, fee=fee
        )


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("P7D", 7 * 86_400, "P7D"),
        ("PT5S", 5, "PT5S"),
        ("P1DT12H", 36 * 3_600, "P1DT12H"),
        ("PT90M", 5_400, "PT1H30M"),
        ("P2W", 14 * 86_400, "P14D"),
        ("PT0S", 0, "PT0S"),
    ],
)
def test_iso_8601_durations(text: str, seconds: int, canonical: str) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert format_duration(parse_duration(text)) == canonical


def test_create_read_list_and_patch_sellers(client: TestClient, uid: str) -> None:
    plain = create(client, f"a-{uid}")
    assert plain["hold_period"] == "P7D"  # the default
    assert plain["rolling_reserve"] is None
    assert (plain["currency"], plain["currency_exponent"]) == ("USD", 2)
    reserved = create(
        client,
        f"b-{uid}",
        hold_period="P1DT12H",
        rolling_reserve={"percent": 2.5, "period": "P90D"},
        metadata={"tier": "gold"},
    )
    assert reserved["hold_period"] == "P1DT12H"
    assert reserved["rolling_reserve"] == {"percent": 2.5, "period": "P90D"}
    assert client.get(f"/v1/sellers/b-{uid}").json() == reserved

    # The same request again returns the seller; other terms are a conflict.
    again = client.post(
        "/v1/sellers", json={"id": f"a-{uid}", "name": f"Shop a-{uid}", "currency": "USD"}
    )
    assert (again.status_code, again.json()) == (200, plain)
    assert_problem(
        client.post("/v1/sellers", json={"id": f"a-{uid}", "name": "Other", "currency": "USD"}),
        409,
        "seller_exists",
    )

    patched = client.patch(
        f"/v1/sellers/b-{uid}",
        json={"name": "Renamed", "hold_period": "PT5S", "rolling_reserve": None},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["hold_period"], body["rolling_reserve"]) == ("Renamed", "PT5S", None)
    assert body["metadata"] == {"tier": "gold"}  # left out: unchanged
    assert_problem(
        client.patch(f"/v1/sellers/z-{uid}", json={"name": "x"}), 404, "seller_not_found"
    )
    assert_problem(client.get(f"/v1/sellers/z-{uid}"), 404, "seller_not_found")

    # Pages by id, with a cursor.
    for n in range(3):
        create(client, f"c{n}-{uid}")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"per_page": 50}
        if cursor:
            params["after_cursor"] = cursor
        page = client.get("/v1/sellers", params=params)
        assert page.status_code == 200, page.text
        seen += [s["id"] for s in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert {f"a-{uid}", f"b-{uid}", f"c0-{uid}", f"c1-{uid}", f"c2-{uid}"} <= set(seen)
    assert_problem(
        client.get("/v1/sellers", params={"after_cursor": "bogus"}), 422, "invalid_cursor"
    )


@pytest.mark.parametrize(
    "terms",
    [
        {"hold_period": "P1M"},
        {"hold_period": "P1Y"},
        {"hold_period": "-P1D"},
        {"hold_period": "seven days"},
        {"hold_period": "PT1.5S"},
        {"hold_period": 604800},
        {"hold_period": "P"},
        {"currency": "usd"},
        {"id": "has space"},
        {"id": ""},
        {"name": ""},
        {"rolling_reserve": {"percent": 0, "period": "P30D"}},
        {"rolling_reserve": {"percent": 101, "period": "P30D"}},
        {"rolling_reserve": {"percent": 2.555, "period": "P30D"}},
        {"rolling_reserve": {"percent": 10}},
        {"colour": "blue"},
    ],
)
def test_invalid_sellers_are_422(client: TestClient, uid: str, terms: dict[str, Any]) -> None:
    body = {"id": f"bad-{uid}", "name": "Bad", "currency": "USD", **terms}
    assert_problem(client.post("/v1/sellers", json=body), 422, "validation_error")
    assert_problem(client.get(f"/v1/sellers/bad-{uid}"), 404, "seller_not_found")


def test_the_schema_says_which_seller_ids_are_valid(app: FastAPI) -> None:
    """The id's pattern is in the OpenAPI schema, not only enforced: clients and Schemathesis
    read it (pydantic leaves a pattern out after an AfterValidator)."""
    schemas = app.openapi()["components"]["schemas"]
    pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
    assert schemas["SellerCreate"]["properties"]["id"]["pattern"] == pattern
    assert schemas["DisputeCreate"]["properties"]["seller_id"]["pattern"] == pattern


@pytest.mark.parametrize(
    "terms",
    [
        {"hold_period": "P400D"},  # longer than the 366 days the marketplace allows
        {"rolling_reserve": {"percent": 10, "period": "PT0S"}},
    ],
)
def test_terms_the_marketplace_refuses_are_422(
    client: TestClient, uid: str, terms: dict[str, Any]
) -> None:
    body = {"id": f"bad-{uid}", "name": "Bad", "currency": "USD", **terms}
    assert_problem(client.post("/v1/sellers", json=body), 422, "validation_failed")


@pytest.mark.parametrize(
    "body",
    [
        {"order_id": "o", "amount": 1.0},
        {"order_id": "o", "amount": "100"},
        {"order_id": "o", "amount": 0},
        {"order_id": "o", "amount": -5},
        {"order_id": "o", "amount": True},
        {"order_id": "o", "amount": 100, "fee": 101},
        {"order_id": "o", "amount": 100, "fee": -1},
        {"order_id": "o", "amount": 100, "fee": 1.5},
        {"order_id": "", "amount": 100},
        {"amount": 100},
        {"order_id": "o", "amount": 100, "metadata": {"n": 1}},
    ],
)
def test_invalid_earnings_are_422(client: TestClient, uid: str, body: dict[str, Any]) -> None:
    create(client, f"e-{uid}")
    response = client.post(f"/v1/sellers/e-{uid}/earnings", json=body)
    assert_problem(response, 422, "validation_error")
    assert client.get(f"/v1/sellers/e-{uid}/earnings").json()["items"] == []


def test_earnings_booked_before_are_answered_from_the_database(
    client: TestClient, engine: Engine, uid: str
) -> None:
    """A repeat of a booked order needs no workflow: 200 with the earning as it is, or 409 for
    other terms; reads of earnings and balances are database only."""
    seller, other = f"db-{uid}", f"db2-{uid}"
    create(client, seller)
    create(client, other)
    book(engine, seller, f"o1-{uid}", 1_000, fee=100)
    book(engine, seller, f"o2-{uid}", 2_000)

    again = client.post(
        f"/v1/sellers/{seller}/earnings",
        json={"order_id": f"o1-{uid}", "amount": 1_000, "fee": 100},
    )
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["net"]) == ("on_hold", 900)
    for conflicting in ({"amount": 1_001, "fee": 100}, {"amount": 1_000}):
        response = client.post(
            f"/v1/sellers/{seller}/earnings", json={"order_id": f"o1-{uid}", **conflicting}
        )
        assert_problem(response, 409, "earning_conflict")
    # The same order for another seller (a multi-seller cart) is that seller's own earning.
    theirs = client.post(
        f"/v1/sellers/{other}/earnings", json={"order_id": f"o1-{uid}", "amount": 400}
    )
    assert theirs.status_code == 201, theirs.text
    assert (theirs.json()["seller_id"], theirs.json()["net"]) == (other, 400)

    earnings = client.get(f"/v1/sellers/{seller}/earnings", params={"per_page": 1})
    assert [e["order_id"] for e in earnings.json()["items"]] == [f"o1-{uid}"]
    rest = client.get(
        f"/v1/sellers/{seller}/earnings",
        params={"per_page": 1, "after_cursor": earnings.json()["next_cursor"]},
    )
    assert [e["order_id"] for e in rest.json()["items"]] == [f"o2-{uid}"]
    on_hold = client.get(f"/v1/sellers/{seller}/earnings", params={"status": "posted"})
    assert on_hold.json()["items"] == []
    assert client.get(f"/v1/sellers/{other}/earnings/o1-{uid}").json()["net"] == 400
    assert_problem(client.get(f"/v1/sellers/{other}/earnings/o2-{uid}"), 404, "earning_not_found")

    balances = client.get(f"/v1/sellers/{seller}/balances").json()
    assert balances["pending"] == {
        "credits": 2_900,
        "debits": 0,
        "amount": 2_900,
        "currency": "USD",
        "currency_exponent": 2,
    }
    assert (balances["posted"]["amount"], balances["available"]["amount"]) == (0, 0)
    assert (balances["on_hold"], balances["in_reserve"], balances["in_dispute"]) == (2_900, 0, 0)


def test_unknown_resources_are_404_before_any_workflow(client: TestClient, uid: str) -> None:
    create(client, f"k-{uid}")
    nobody = f"nobody-{uid}"
    assert_problem(
        client.post(f"/v1/sellers/{nobody}/earnings", json={"order_id": "o", "amount": 1}),
        404,
        "seller_not_found",
    )
    assert_problem(client.get(f"/v1/sellers/{nobody}/balances"), 404, "seller_not_found")
    assert_problem(client.get(f"/v1/sellers/{nobody}/holds"), 404, "seller_not_found")
    for action in ("release", "cancel"):
        assert_problem(
            client.post(f"/v1/sellers/k-{uid}/holds/nothing-{uid}/{action}"), 404, "hold_not_found"
        )
    assert_problem(
        client.post("/v1/disputes", json={"seller_id": nobody, "order_id": "o", "amount": 1}),
        404,
        "seller_not_found",
    )
    assert_problem(client.get(f"/v1/disputes/d-{uid}"), 404, "dispute_not_found")
    assert_problem(
        client.post(f"/v1/disputes/d-{uid}/resolve", json={"outcome": "won"}),
        404,
        "dispute_not_found",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0},
        {"amount": 10.5},
        {"deadline": "2030-01-01T00:00:00"},  # no offset
        {"deadline": "2030-01-01T00:00:00Z", "respond_by": "2030-02-01T00:00:00Z"},
        {"id": "not valid!"},
        {"reason": 5},
    ],
)
def test_invalid_disputes_are_422(client: TestClient, uid: str, body: dict[str, Any]) -> None:
    create(client, f"dq-{uid}")
    full = {"seller_id": f"dq-{uid}", "order_id": "o", "amount": 100, **body}
    assert_problem(client.post("/v1/disputes", json=full), 422, "validation_error")


def test_dispute_rules_checked_by_the_api(client: TestClient, engine: Engine, uid: str) -> None:
    mine, theirs = f"dm-{uid}", f"dt-{uid}"
    create(client, mine)
    create(client, theirs)
    book(engine, theirs, f"their-order-{uid}", 500)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = client.post(
        "/v1/disputes", json={"seller_id": mine, "order_id": "o", "amount": 1, "deadline": past}
    )
    assert_problem(response, 422, "validation_failed")
    # An unknown dispute is a 404 before its body is looked at, like one of the other mode.
    assert_problem(
        client.post(f"/v1/disputes/x-{uid}/resolve", json={"outcome": "maybe"}),
        404,
        "dispute_not_found",
    )


def test_without_temporal_workflow_routes_are_503(client: TestClient, uid: str) -> None:
    """``create_app`` without a Temporal client: orders are booked (a database write), the
    ledger and the database reads work, the routes that steer a workflow answer 503."""
    create(client, f"nt-{uid}")
    booked = client.post(
        f"/v1/sellers/nt-{uid}/earnings", json={"order_id": f"o-{uid}", "amount": 1}
    )
    assert booked.status_code == 201, booked.text
    response = client.post(f"/v1/sellers/nt-{uid}/holds/o-{uid}/release")
    assert_problem(response, 503, "temporal_unavailable")
    assert response.headers["Retry-After"]
    holds = client.get(f"/v1/sellers/nt-{uid}/holds").json()
    assert [h["order_id"] for h in holds["items"]] == [f"o-{uid}"]
    assert client.get(f"/v1/sellers/nt-{uid}/balances").json()["on_hold"] == 1
    assert [e["status"] for e in client.get(f"/v1/sellers/nt-{uid}/earnings").json()["items"]] == [
        "on_hold"
    ]


async def test_temporal_out_of_reach_is_503(engine: Engine, admin_key: str, uid: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    temporal = await Client.connect(address, lazy=True)
    app = create_app(engine, temporal_client=temporal)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers=headers
    ) as api:
        created = await api.post(
            "/v1/sellers", json={"id": f"off-{uid}", "name": "Off", "currency": "USD"}
        )
        assert created.status_code == 201, created.text
        # Order intake needs no Temporal.
        booked = await api.post(
            f"/v1/sellers/off-{uid}/earnings", json={"order_id": f"o-{uid}", "amount": 5}
        )
        assert booked.status_code == 201, booked.text
        assert (await api.get(f"/v1/sellers/off-{uid}/holds")).status_code == 200
        for response in (
            await api.post(f"/v1/sellers/off-{uid}/holds/o-{uid}/release"),
            await api.post(
                "/v1/disputes", json={"seller_id": f"off-{uid}", "order_id": "o", "amount": 5}
            ),
        ):
            assert_problem(response, 503, "temporal_unavailable")
        # The hold was not released, and a failed request stored no idempotent answer.
        earnings = await api.get(f"/v1/sellers/off-{uid}/earnings")
        assert [e["status"] for e in earnings.json()["items"]] == ["on_hold"]


def test_an_atomic_batch_with_a_bad_item_books_none_and_answers_its_documented_problem(
    client: TestClient, app: FastAPI, uid: str
) -> None:
    create(client, f"batch-{uid}")
    good = {"seller_id": f"batch-{uid}", "order_id": f"o-{uid}", "amount": 1_000, "fee": 100}
    bad = {"seller_id": f"batch-{uid}", "order_id": f"p-{uid}", "amount": -5}
    response = client.post("/v1/earnings/batch", json={"earnings": [good, bad], "atomic": True})
    assert_problem(response, 422, "batch_rejected")
    errors = response.json()["errors"]
    assert [(e["index"], e["code"]) for e in errors] == [(1, "validation_failed")]
    assert client.get(f"/v1/sellers/batch-{uid}/earnings").json()["items"] == []
    # The body is what the OpenAPI document says a 422 of this operation is.
    document = app.openapi()
    schema = document["components"]["schemas"]["Problem"]
    jsonschema_rs.validate(schema, response.json())
