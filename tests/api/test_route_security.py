"""Every route's authentication and authorization, listed from ``app.routes`` (a new route without
an entry in ``POLICY`` or ``PUBLIC`` fails ``test_every_route_has_a_policy``), and bad input that
must get a clean 4xx: SQL-injection-like ids and query strings, NUL bytes, oversized and deeply
nested bodies."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.auth import ApiKeyRole, create_api_key
from api.problems import PROBLEM_JSON
from api.routing import MAX_BODY_SIZE
from marketplace import Marketplace
from tests.api.conftest import client_for, make_key
from tests.schedules.conftest import new_seller

ADMIN, OPERATOR, SELLER = ApiKeyRole.ADMIN, ApiKeyRole.OPERATOR, ApiKeyRole.SELLER
WALLET = ApiKeyRole.WALLET
PLATFORM = frozenset({ADMIN, OPERATOR})
ANY_ROLE = frozenset({ADMIN, OPERATOR, SELLER})
ADMIN_ONLY = frozenset({ADMIN})
# Wallet routes: a wallet key reads its own wallet; a seller key has no access.
WALLET_READ = frozenset({ADMIN, OPERATOR, WALLET})

# Routes without an API key. The rail's webhook authenticates by its signature instead.
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
    }
)
SIGNED: frozenset[tuple[str, str]] = frozenset({("POST", "/v1/rail/webhooks")})

# Which roles may call each route. A seller key on an ANY_ROLE route sees its own seller only.
POLICY: dict[tuple[str, str], frozenset[ApiKeyRole]] = {
    ("POST", "/v1/sellers"): PLATFORM,
    ("GET", "/v1/sellers"): ANY_ROLE,
    ("GET", "/v1/sellers/{seller_id}"): ANY_ROLE,
    ("PATCH", "/v1/sellers/{seller_id}"): PLATFORM,
    ("GET", "/v1/sellers/{seller_id}/balances"): ANY_ROLE,
    ("GET", "/v1/sellers/{seller_id}/statement"): ANY_ROLE,
    ("POST", "/v1/sellers/{seller_id}/earnings"): PLATFORM,
    ("POST", "/v1/earnings/batch"): PLATFORM,
    ("GET", "/v1/sellers/{seller_id}/earnings"): ANY_ROLE,
    ("GET", "/v1/sellers/{seller_id}/earnings/{order_id}"): ANY_ROLE,
    ("GET", "/v1/sellers/{seller_id}/holds"): ANY_ROLE,
    ("POST", "/v1/sellers/{seller_id}/holds/{order_id}/release"): PLATFORM,
    ("POST", "/v1/sellers/{seller_id}/holds/{order_id}/extend"): PLATFORM,
    ("POST", "/v1/sellers/{seller_id}/holds/{order_id}/cancel"): PLATFORM,
    ("PUT", "/v1/sellers/{seller_id}/payout_schedule"): PLATFORM,
    ("GET", "/v1/sellers/{seller_id}/payout_schedule"): ANY_ROLE,
    ("DELETE", "/v1/sellers/{seller_id}/payout_schedule"): PLATFORM,
    ("POST", "/v1/sellers/{seller_id}/payout_schedule/pause"): PLATFORM,
    ("POST", "/v1/sellers/{seller_id}/payout_schedule/resume"): PLATFORM,
    ("POST", "/v1/sellers/{seller_id}/payout_schedule/trigger"): PLATFORM,
    ("PUT", "/v1/sellers/{seller_id}/payout_account"): PLATFORM,
    ("GET", "/v1/sellers/{seller_id}/payout_account"): ANY_ROLE,
    ("POST", "/v1/sellers/{seller_id}/payouts"): PLATFORM,
    ("GET", "/v1/payouts"): ANY_ROLE,
    ("GET", "/v1/payouts/{payout_id}"): ANY_ROLE,
    ("GET", "/v1/payouts/{payout_id}/items"): ANY_ROLE,
    ("POST", "/v1/payouts/{payout_id}/cancel"): PLATFORM,
    ("POST", "/v1/sellers/{seller_id}/earnings/{order_id}/refund"): PLATFORM,
    ("POST", "/v1/disputes"): PLATFORM,
    ("GET", "/v1/disputes"): ANY_ROLE,
    ("GET", "/v1/disputes/{dispute_id}"): ANY_ROLE,
    ("POST", "/v1/disputes/{dispute_id}/resolve"): PLATFORM,
    ("POST", "/v1/reconciliation/statements"): PLATFORM,
    ("GET", "/v1/reconciliation/statements/{statement_id}"): PLATFORM,
    ("POST", "/v1/ledgers"): PLATFORM,
    ("GET", "/v1/ledgers"): PLATFORM,
    ("GET", "/v1/ledgers/{ledger_id}"): PLATFORM,
    ("POST", "/v1/ledger_accounts"): PLATFORM,
    ("GET", "/v1/ledger_accounts"): PLATFORM,
    ("GET", "/v1/ledger_accounts/{ledger_account_id}"): PLATFORM,
    ("GET", "/v1/ledger_entries"): PLATFORM,
    ("POST", "/v1/ledger_transactions"): PLATFORM,
    ("GET", "/v1/ledger_transactions"): PLATFORM,
    ("GET", "/v1/ledger_transactions/{ledger_transaction_id}"): PLATFORM,
    ("PATCH", "/v1/ledger_transactions/{ledger_transaction_id}"): PLATFORM,
    ("POST", "/v1/ledger_transactions/{ledger_transaction_id}/reversal"): PLATFORM,
    ("POST", "/v1/webhook_endpoints"): ADMIN_ONLY,
    ("GET", "/v1/webhook_endpoints"): PLATFORM,
    ("GET", "/v1/webhook_endpoints/{endpoint_id}"): PLATFORM,
    ("DELETE", "/v1/webhook_endpoints/{endpoint_id}"): ADMIN_ONLY,
    ("GET", "/v1/events"): ANY_ROLE,
    ("GET", "/v1/events/{event_id}"): ANY_ROLE,
    ("GET", "/v1/webhook_deliveries"): PLATFORM,
    ("GET", "/v1/webhook_deliveries/{delivery_id}"): PLATFORM,
    ("POST", "/v1/webhook_deliveries/{delivery_id}/resend"): PLATFORM,
    ("POST", "/v1/test_clocks"): PLATFORM,
    ("GET", "/v1/test_clocks"): PLATFORM,
    ("GET", "/v1/test_clocks/{clock_id}"): PLATFORM,
    ("DELETE", "/v1/test_clocks/{clock_id}"): PLATFORM,
    ("POST", "/v1/test_clocks/{clock_id}/advance"): PLATFORM,
    ("POST", "/v1/wallets"): PLATFORM,
    ("GET", "/v1/wallets"): WALLET_READ,
    ("GET", "/v1/wallets/{wallet_id}"): WALLET_READ,
    ("GET", "/v1/wallets/{wallet_id}/balances"): WALLET_READ,
    ("GET", "/v1/wallets/{wallet_id}/statement"): WALLET_READ,
    ("POST", "/v1/wallets/{wallet_id}/top_ups"): PLATFORM,
    ("GET", "/v1/wallets/{wallet_id}/top_ups"): WALLET_READ,
    ("GET", "/v1/wallets/{wallet_id}/top_ups/{top_up_id}"): WALLET_READ,
    ("POST", "/v1/wallets/{wallet_id}/top_ups/{top_up_id}/settle"): PLATFORM,
    ("POST", "/v1/wallets/{wallet_id}/top_ups/{top_up_id}/fail"): PLATFORM,
    ("POST", "/v1/wallets/{wallet_id}/top_ups/{top_up_id}/expiry"): PLATFORM,
    ("POST", "/v1/wallets/{wallet_id}/spends"): PLATFORM,
    ("GET", "/v1/wallets/{wallet_id}/spends"): WALLET_READ,
    ("GET", "/v1/wallets/{wallet_id}/spends/{spend_id}"): WALLET_READ,
    ("POST", "/v1/wallets/{wallet_id}/spends/{spend_id}/refunds"): PLATFORM,
    ("POST", "/v1/wallet_transfers"): PLATFORM,
    ("GET", "/v1/wallet_transfers/{transfer_id}"): WALLET_READ,
}

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
# What a database or stack trace would leak into a response.
LEAKS = re.compile(r"psycopg|sqlalchemy|traceback|syntax error|SELECT |pg_", re.IGNORECASE)


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves (HEAD/OPTIONS aside), included routers' too."""
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method not in {"HEAD", "OPTIONS"} and route.path is not None:
                found.add((method, route.path))
    assert found, "the app serves no routes?"
    return sorted(found)


def fill(path: str, seller_id: str = "nobody", wallet_id: str = "nobody") -> str:
    own = {"seller_id": seller_id, "wallet_id": wallet_id}
    return PARAM.sub(lambda m: own.get(m.group(1), "nothing-here"), path)


def send(client: TestClient, method: str, path: str) -> Any:
    body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    return client.request(method, path, **body)


def assert_problem(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    if code is not None:
        assert response.json()["code"] == code, response.text


@pytest.fixture(scope="module")
def sellers(engine: Engine) -> tuple[str, str]:
    """Two sellers: the key's own and another one."""
    return new_seller(engine, available=1_000), new_seller(engine, available=2_000)


@pytest.fixture
def seller_client(app: FastAPI, engine: Engine, sellers: tuple[str, str]) -> Iterator[TestClient]:
    with client_for(app, make_key(engine, SELLER, sellers[0])) as c:
        yield c


def test_every_route_has_a_policy(app: FastAPI) -> None:
    routes = set(app_routes(app))
    unlisted = routes - set(POLICY) - PUBLIC - SIGNED
    assert not unlisted, f"routes without an entry in POLICY: {sorted(unlisted)}"
    stale = set(POLICY) - routes
    assert not stale, f"POLICY names routes the app does not serve: {sorted(stale)}"


def test_without_a_key_every_private_route_is_401(app: FastAPI, anon: TestClient) -> None:
    for method, path in app_routes(app):
        response = send(anon, method, fill(path))
        if (method, path) in PUBLIC:
            assert response.status_code < 500, (path, response.text)
        elif (method, path) in SIGNED:
            # An unsigned webhook is refused, and nothing is applied.
            assert 400 <= response.status_code < 500, (path, response.text)
        else:
            assert_problem(response, 401, "unauthorized")
            assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    "authorization",
    ["Bearer sk_not-a-real-key", "Bearer ' OR 1=1 --", "Basic YWRtaW46YWRtaW4=", "Bearer"],
)
def test_an_invalid_key_is_401_everywhere(app: FastAPI, authorization: str) -> None:
    with TestClient(app, headers={"Authorization": authorization}) as client:
        for method, path in app_routes(app):
            if (method, path) not in PUBLIC | SIGNED:
                assert_problem(send(client, method, fill(path)), 401, "unauthorized")


def test_a_seller_key_writes_nothing_and_reads_only_its_own(
    app: FastAPI, seller_client: TestClient, sellers: tuple[str, str]
) -> None:
    own, other = sellers
    for (method, path), roles in POLICY.items():
        if SELLER not in roles:
            # Not even on its own seller: platform keys only.
            for seller_id in (own, other):
                assert_problem(send(seller_client, method, fill(path, seller_id)), 403, "forbidden")
        elif "{seller_id}" in path:
            # Another seller's resources are unknown to it.
            response = send(seller_client, method, fill(path, other))
            assert response.status_code == 404, (path, response.text)
            assert other not in response.text or response.json()["code"].endswith("not_found")

    assert seller_client.get(f"/v1/sellers/{own}").status_code == 200
    assert seller_client.get(f"/v1/sellers/{own}/balances").json()["seller_id"] == own
    listed = seller_client.get("/v1/sellers", params={"per_page": 100}).json()
    assert [s["id"] for s in listed["items"]] == [own]
    disputes = seller_client.get("/v1/disputes", params={"seller_id": other})
    assert disputes.status_code in {200, 404}, disputes.text
    if disputes.status_code == 200:
        assert all(d["seller_id"] == own for d in disputes.json()["items"])


@pytest.fixture(scope="module")
def wallets(engine: Engine) -> tuple[str, str]:
    """Two wallets: the key's own and another one."""
    made = []
    with engine.begin() as conn:
        for _ in range(2):
            wallet, _created = Marketplace().create_wallet(
                conn, owner=f"u-{uuid.uuid4().hex[:8]}", name="Wallet", currency="USD"
            )
            made.append(wallet.id)
    return made[0], made[1]


def test_a_wallet_key_writes_nothing_and_reads_only_its_own(
    app: FastAPI, engine: Engine, wallets: tuple[str, str]
) -> None:
    own, other = wallets
    with engine.begin() as conn:
        key, _ = create_api_key(conn, role=WALLET, wallet_id=own, name="test wallet key")
    with client_for(app, key) as wallet_client:
        for (method, path), roles in POLICY.items():
            if WALLET not in roles:
                # Writes (even on its own wallet) and every seller or ledger route: 403.
                for wallet_id in (own, other):
                    response = send(wallet_client, method, fill(path, wallet_id=wallet_id))
                    assert_problem(response, 403, "forbidden")
            elif "{wallet_id}" in path:
                # Another wallet's resources are unknown to it, worded as for an unknown one.
                response = send(wallet_client, method, fill(path, wallet_id=other))
                assert_problem(response, 404)
                assert response.json()["code"] == "wallet_not_found", (path, response.text)
                assert response.json()["detail"] == f"wallet {other!r} not found"
        assert wallet_client.get(f"/v1/wallets/{own}").status_code == 200
        assert wallet_client.get(f"/v1/wallets/{own}/balances").json()["wallet_id"] == own
        listed = wallet_client.get("/v1/wallets", params={"per_page": 100}).json()
        assert [w["id"] for w in listed["items"]] == [own]


INJECTIONS = ["' OR 1=1 --", "1; DROP TABLE sellers; --", "%00", "a\x00b", "\u0000", "ä' --"]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_like_ids_and_queries_get_a_clean_4xx(
    app: FastAPI, client: TestClient, payload: str
) -> None:
    for method, path in app_routes(app):
        if (method, path) in PUBLIC | SIGNED or method != "GET":
            continue
        segment = quote(payload, safe="")  # "%00" itself arrives as a NUL byte
        target = fill(path, segment).replace("nothing-here", segment)
        response = client.get(target, params={"after_cursor": payload, "seller_id": payload})
        assert 200 <= response.status_code < 500, (target, response.text)
        assert not LEAKS.search(response.text), (target, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith(PROBLEM_JSON)


def test_an_oversized_body_is_a_413_problem(client: TestClient) -> None:
    big = b'{"name": "' + b"x" * (MAX_BODY_SIZE + 1) + b'", "currency": "USD"}'
    response = client.post("/v1/ledgers", content=big, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("depth", [100, 10_000, 100_000])
def test_deeply_nested_json_is_a_clean_4xx(client: TestClient, depth: int) -> None:
    nested = '{"a": ' * depth + "1" + "}" * depth
    body = f'{{"name": "n-{uuid.uuid4()}", "currency": "USD", "metadata": {nested}}}'
    response = client.post(
        "/v1/ledgers", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text[:500]
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


def test_a_non_latin1_id_in_a_location_header_is_no_server_error(client: TestClient) -> None:
    """Found by Schemathesis: an order id like "Ā" made the earning's Location header a 500."""
    response = client.post("/v1/sellers/%C4%80/earnings", json={"order_id": "Ā", "amount": 1})
    assert_problem(response, 404, "seller_not_found")


def test_an_operator_key_is_refused_the_admin_only_routes(app: FastAPI, engine: Engine) -> None:
    admin_only = [route for route, roles in POLICY.items() if OPERATOR not in roles]
    assert admin_only, "webhook endpoints are configured by admin keys only"
    with client_for(app, make_key(engine, OPERATOR)) as operator:
        for method, path in admin_only:
            assert_problem(send(operator, method, fill(path)), 403, "forbidden")
