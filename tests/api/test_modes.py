"""Test mode (``api.modes``): live and test keys, and every route's isolation.

A live key reads and writes live objects only, a test key test-mode objects only: an object of
the other mode named in the path answers exactly as an unknown one (404, same code and message),
lists show the key's mode only, and writes naming the other mode's object in their body are that
object's 404. ``test_every_route_keeps_the_modes_apart`` walks every route of the app with a
world of objects of each mode; ``test_every_response_object_says_its_mode`` walks the OpenAPI
schema's response models.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.auth import create_api_key, hash_api_key
from api.modes import LIVE_ONLY_PARAMS, PATH_ROOTS, TEST_ONLY_PARAMS, WITHIN_ROOT
from server import cli
from server.settings import get_settings
from tests.api.conftest import client_for
from tests.api.mode_world import (
    PARAM,
    World,
    build_world,
    fill,
    make_key,
    ok,
    same_shape,
    unknown_ids,
)
from tests.api.test_route_security import POLICY, app_routes

# What a route answers for an unknown object of each kind named in its path.
NOT_FOUND_CODES = {
    "seller_id": "seller_not_found",
    "wallet_id": "wallet_not_found",
    "payout_id": "payout_not_found",
    "dispute_id": "dispute_not_found",
    "event_id": "event_not_found",
    "endpoint_id": "webhook_endpoint_not_found",
    "delivery_id": "webhook_delivery_not_found",
    "transfer_id": "wallet_transfer_not_found",
    "ledger_id": "not_found",
    "ledger_account_id": "not_found",
    "ledger_transaction_id": "not_found",
}


@pytest.fixture(scope="module")
def live(app: FastAPI, engine: Engine) -> Iterator[TestClient]:
    with client_for(app, make_key(engine, livemode=True)) as c:
        yield c


@pytest.fixture(scope="module")
def test(app: FastAPI, engine: Engine) -> Iterator[TestClient]:
    with client_for(app, make_key(engine, livemode=False)) as c:
        yield c


# ------------------------------------------------------------------------------------- keys


def test_keys_say_their_mode_and_old_keys_stay_live(app: FastAPI, engine: Engine) -> None:
    with engine.begin() as conn:
        live_key, live_record = create_api_key(conn, role="admin", name="live")
        test_key, test_record = create_api_key(conn, role="admin", name="t", livemode=False)
        # A key made before test mode: plain ``sk_`` and no mode given (the column's default).
        old_key = "sk_" + uuid.uuid4().hex + uuid.uuid4().hex
        conn.execute(
            text(
                "INSERT INTO api_keys (id, name, role, key_prefix, key_hash, created_at) "
                "VALUES (:id, 'old', 'admin', 'sk_old', :hash, now())"
            ),
            {"id": uuid.uuid4(), "hash": hash_api_key(old_key)},
        )
    assert live_key.startswith("sk_live_") and live_record.livemode
    assert test_key.startswith("sk_test_") and not test_record.livemode
    assert test_record.key_prefix.startswith("sk_test_")
    for key, livemode in ((live_key, True), (test_key, False), (old_key, True)):
        with client_for(app, key) as c:
            ledger = ok(c.post("/v1/ledgers", json={"name": "k", "currency": "USD"}), 201)
        assert ledger["livemode"] is livemode


@pytest.fixture
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_cli_makes_test_keys_with_mode_test(
    app: FastAPI, cli_database: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["api-keys", "create", "--role", "operator", "--mode", "test"]) == 0
    test_key = capsys.readouterr().out.strip()
    assert cli.main(["api-keys", "create", "--role", "operator"]) == 0
    live_key = capsys.readouterr().out.strip()
    assert test_key.startswith("sk_test_") and live_key.startswith("sk_live_")
    with client_for(app, test_key) as c:
        assert ok(c.get("/v1/sellers"))["items"] == [] or all(
            s["livemode"] is False for s in ok(c.get("/v1/sellers"))["items"]
        )
    with pytest.raises(SystemExit):
        cli.main(["api-keys", "create", "--role", "admin", "--mode", "sandbox"])


# ------------------------------------------------------------------------------- a world


@pytest.fixture(scope="module")
def worlds(live: TestClient, test: TestClient, engine: Engine) -> dict[bool, World]:
    uid = uuid.uuid4().hex[:8]
    return {
        True: build_world(live, engine, True, uid),
        False: build_world(test, engine, False, uid),
    }


# ------------------------------------------------------------------------------ the routes


def test_every_path_parameter_has_a_mode_rule(app: FastAPI) -> None:
    """A new route naming an object in its path must say how its mode is found (api.modes)."""
    known = PATH_ROOTS.keys() | WITHIN_ROOT | LIVE_ONLY_PARAMS | TEST_ONLY_PARAMS
    for method, path in app_routes(app):
        for param in PARAM.findall(path):
            assert param in known, f"{method} {path}: {{{param}}} has no mode rule in api.modes"


def test_every_route_keeps_the_modes_apart(
    app: FastAPI, live: TestClient, test: TestClient, worlds: dict[bool, World]
) -> None:
    """For every route naming objects in its path: a key of one mode naming the other mode's
    objects gets the 404 of an unknown object (a GET: the very same answer, the id aside),
    before anything runs; test keys get a 403 on the live-only routes."""
    clients = {True: live, False: test}
    checked = 0
    for method, path in app_routes(app):
        params = PARAM.findall(path)
        if not params or (method, path) not in POLICY:
            continue
        for livemode in (True, False):
            client, other = clients[livemode], worlds[not livemode]
            body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
            if set(params) & LIVE_ONLY_PARAMS:
                answer = client.request(method, fill(path, unknown_ids(other)), **body)
                if not livemode:
                    assert answer.status_code == 403, (method, path, answer.text)
                    assert answer.json()["code"] == "live_mode_only"
                continue
            if set(params) & TEST_ONLY_PARAMS:
                answer = client.request(method, fill(path, unknown_ids(other)), **body)
                if livemode:
                    assert answer.status_code == 403, (method, path, answer.text)
                    assert answer.json()["code"] == "test_mode_only"
                continue
            root = next(p for p in params if p in PATH_ROOTS)
            answer = client.request(method, fill(path, other.ids), **body)
            assert answer.status_code == 404, (livemode, method, path, answer.text)
            assert answer.json()["code"] == NOT_FOUND_CODES[root], (method, path, answer.text)
            if method == "GET":
                unknown = unknown_ids(other)
                unknown[root] = same_shape(other.ids[root])
                expected = client.get(fill(path, unknown))
                assert expected.status_code == 404
                got, want = answer.json(), expected.json()
                assert got["code"] == want["code"]
                assert got["detail"].replace(other.ids[root], "ID") == want["detail"].replace(
                    unknown[root], "ID"
                )
            checked += 1
    assert checked > 50


def test_each_key_reads_its_own_world(
    live: TestClient, test: TestClient, worlds: dict[bool, World]
) -> None:
    """Every object of a world reads back with its key, and says its mode."""
    for livemode, client in ((True, live), (False, test)):
        ids = worlds[livemode].ids
        reads = [
            f"/v1/sellers/{ids['seller_id']}",
            f"/v1/sellers/{ids['seller_id']}/balances",
            f"/v1/sellers/{ids['seller_id']}/earnings/{ids['order_id']}",
            f"/v1/payouts/{ids['payout_id']}",
            f"/v1/disputes/{ids['dispute_id']}",
            f"/v1/events/{ids['event_id']}",
            f"/v1/webhook_endpoints/{ids['endpoint_id']}",
            f"/v1/webhook_deliveries/{ids['delivery_id']}",
            f"/v1/ledgers/{ids['ledger_id']}",
            f"/v1/ledger_accounts/{ids['ledger_account_id']}",
            f"/v1/ledger_transactions/{ids['ledger_transaction_id']}",
            f"/v1/wallets/{ids['wallet_id']}",
            f"/v1/wallets/{ids['wallet_id']}/balances",
            f"/v1/wallets/{ids['wallet_id']}/top_ups/{ids['top_up_id']}",
            f"/v1/wallets/{ids['wallet_id']}/spends/{ids['spend_id']}",
            f"/v1/wallet_transfers/{ids['transfer_id']}",
        ]
        for path in reads:
            assert ok(client.get(path))["livemode"] is livemode, path
        event = ok(client.get(f"/v1/events/{ids['event_id']}"))
        assert event["livemode"] is livemode


def test_the_cli_refuses_a_seller_or_wallet_key_of_the_other_mode(
    cli_database: None, worlds: dict[bool, World], capsys: pytest.CaptureFixture[str]
) -> None:
    test_seller, test_wallet = worlds[False].ids["seller_id"], worlds[False].ids["wallet_id"]
    for owner in (
        ["--role", "seller", "--seller", test_seller],
        ["--role", "wallet", "--wallet-id", test_wallet],
    ):
        assert cli.main(["api-keys", "create", *owner]) == 2
        assert "--mode test" in capsys.readouterr().err
        assert cli.main(["api-keys", "create", *owner, "--mode", "test"]) == 0
        assert capsys.readouterr().out.strip().startswith("sk_test_")


def test_every_role_keeps_its_mode(app: FastAPI, engine: Engine, worlds: dict[bool, World]) -> None:
    """Seller, wallet and operator keys of each mode: a seller or wallet key reads its own
    object of its mode; the other mode's seller or wallet is the 404 of an unknown one (for a
    seller key, as another seller's is); an operator key lists its mode's sellers only."""
    for livemode in (True, False):
        mine, other = worlds[livemode].ids, worlds[not livemode].ids
        with engine.begin() as conn:
            seller_key, _ = create_api_key(
                conn, role="seller", seller_id=mine["seller_id"], name="s", livemode=livemode
            )
            wallet_key, _ = create_api_key(
                conn, role="wallet", wallet_id=mine["wallet_id"], name="w", livemode=livemode
            )
            operator_key, _ = create_api_key(conn, role="operator", name="o", livemode=livemode)
        with client_for(app, seller_key) as seller:
            own = ok(seller.get(f"/v1/sellers/{mine['seller_id']}/balances"))
            assert own["livemode"] is livemode
            answer = seller.get(f"/v1/sellers/{other['seller_id']}/balances")
            assert (answer.status_code, answer.json()["code"]) == (404, "seller_not_found")
            payout = seller.get(f"/v1/payouts/{other['payout_id']}")
            assert (payout.status_code, payout.json()["code"]) == (404, "payout_not_found")
        with client_for(app, wallet_key) as wallet:
            assert ok(wallet.get(f"/v1/wallets/{mine['wallet_id']}"))["livemode"] is livemode
            answer = wallet.get(f"/v1/wallets/{other['wallet_id']}")
            assert (answer.status_code, answer.json()["code"]) == (404, "wallet_not_found")
        with client_for(app, operator_key) as operator:
            listed = {s["id"]: s["livemode"] for s in _everything(operator, "/v1/sellers", {})}
            assert mine["seller_id"] in listed and other["seller_id"] not in listed
            assert set(listed.values()) == {livemode}


LISTS = {
    "/v1/sellers": "id",
    "/v1/payouts": "id",
    "/v1/disputes": "id",
    "/v1/events": "id",
    "/v1/webhook_endpoints": "id",
    "/v1/webhook_deliveries": "id",
    "/v1/ledgers": "id",
    "/v1/ledger_accounts": "id",
    "/v1/ledger_transactions": "id",
    "/v1/ledger_entries": "ledger_transaction_id",
    "/v1/wallets": "id",
}


def _everything(client: TestClient, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "per_page": "100", **({"after_cursor": cursor} if cursor else {})}
        page = ok(client.get(path, params=query))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_lists_show_the_keys_mode_only(
    live: TestClient, test: TestClient, worlds: dict[bool, World]
) -> None:
    for livemode, client in ((True, live), (False, test)):
        mine, theirs = worlds[livemode].ids, worlds[not livemode].ids
        for path, field in LISTS.items():
            # Narrowed where a list can be, so that the pages stay short in a shared database.
            params = {
                "/v1/events": {"seller_id": mine["seller_id"]},
                "/v1/webhook_deliveries": {"endpoint_id": mine["endpoint_id"]},
                "/v1/ledger_accounts": {"ledger_id": mine["ledger_id"]},
                "/v1/ledger_transactions": {"ledger_id": mine["ledger_id"]},
                "/v1/ledger_entries": {"ledger_id": mine["ledger_id"]},
            }.get(path, {})
            items = _everything(client, path, params)
            assert items, path
            assert all(i["livemode"] is livemode for i in items), path
            values = {i[field] for i in items}
            assert not values & set(theirs.values()), path
            # The other mode's filter value finds nothing.
            other_params = {k: theirs[v] for k, v in _filters(path).items()}
            if other_params:
                assert ok(client.get(path, params=other_params))["items"] == [], path


def _filters(path: str) -> dict[str, str]:
    return {
        "/v1/events": {"seller_id": "seller_id"},
        "/v1/payouts": {"seller_id": "seller_id"},
        "/v1/disputes": {"seller_id": "seller_id"},
        "/v1/webhook_deliveries": {"endpoint_id": "endpoint_id"},
        "/v1/ledger_accounts": {"ledger_id": "ledger_id"},
        "/v1/ledger_transactions": {"ledger_id": "ledger_id"},
        "/v1/ledger_entries": {"ledger_id": "ledger_id"},
    }.get(path, {})


# ------------------------------------------------------------- writes naming the other mode


def test_writes_naming_the_other_modes_objects_are_404(
    live: TestClient, test: TestClient, worlds: dict[bool, World]
) -> None:
    live_ids, test_ids = worlds[True].ids, worlds[False].ids
    # Booking an earning for a live seller with a test key, one at a time or in a batch.
    answer = test.post(
        f"/v1/sellers/{live_ids['seller_id']}/earnings", json={"order_id": "x", "amount": 5}
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "seller_not_found")
    batch = ok(
        test.post(
            "/v1/earnings/batch",
            json={
                "earnings": [
                    {"seller_id": live_ids["seller_id"], "order_id": "b-1", "amount": 5},
                    {"seller_id": test_ids["seller_id"], "order_id": "b-1", "amount": 5},
                ]
            },
        )
    )
    assert [r["status"] for r in batch["results"]] == [404, 201]
    assert batch["results"][0]["error"]["code"] == "seller_not_found"
    assert batch["results"][1]["earning"]["livemode"] is False
    # A ledger transaction on a live ledger's accounts, an account in a live ledger.
    live_account = live_ids["ledger_account_id"]
    answer = test.post(
        "/v1/ledger_transactions",
        json={
            "ledger_id": live_ids["ledger_id"],
            "ledger_entries": [
                {"ledger_account_id": live_account, "direction": "debit", "amount": 1},
                {"ledger_account_id": live_account, "direction": "credit", "amount": 1},
            ],
        },
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")
    answer = test.post(
        "/v1/ledger_accounts",
        json={"ledger_id": live_ids["ledger_id"], "name": "x", "normal_balance": "debit"},
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")
    # Wallet transfers across modes, either way round.
    for client, sender, receiver in (
        (test, test_ids["wallet_id"], live_ids["wallet_id"]),
        (test, live_ids["wallet_id"], test_ids["wallet_id"]),
        (live, live_ids["wallet_id"], test_ids["wallet_id"]),
    ):
        answer = client.post(
            "/v1/wallet_transfers",
            json={"from_wallet_id": sender, "to_wallet_id": receiver, "amount": 1},
        )
        assert (answer.status_code, answer.json()["code"]) == (404, "wallet_not_found")
    # A dispute on a live seller with a test key.
    answer = test.post(
        "/v1/disputes",
        json={"seller_id": live_ids["seller_id"], "order_id": "o-1", "amount": 1},
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "seller_not_found")


def test_ids_are_one_namespace(
    live: TestClient, test: TestClient, worlds: dict[bool, World]
) -> None:
    """A test seller or wallet with a live one's id is the existing conflict (409), not a
    second object: ids are unique across modes."""
    seller = worlds[True].ids["seller_id"]
    answer = test.post("/v1/sellers", json={"id": seller, "name": "S", "currency": "USD"})
    assert (answer.status_code, answer.json()["code"]) == (409, "seller_exists")
    wallet = worlds[False].ids["wallet_id"]
    answer = live.post(
        "/v1/wallets", json={"id": wallet, "owner": "u", "name": "W", "currency": "USD"}
    )
    assert (answer.status_code, answer.json()["code"]) == (409, "wallet_exists")


def test_test_money_never_touches_a_live_ledger(
    engine: Engine, live: TestClient, test: TestClient, worlds: dict[bool, World]
) -> None:
    """A test seller's account and every ledger transaction of its earnings are in the test
    platform ledger of its currency, not the live one."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.livemode, l.livemode AS ledger_livemode, p.ledger_id = l.id AS platform"
                "  FROM sellers s JOIN ledger_accounts a ON a.id = s.ledger_account_id"
                "  JOIN ledgers l ON l.id = a.ledger_id"
                "  JOIN platform_ledgers p ON p.currency = s.currency AND p.livemode = s.livemode"
                " WHERE s.id IN (:live, :test)"
            ),
            {"live": worlds[True].ids["seller_id"], "test": worlds[False].ids["seller_id"]},
        ).all()
        entries = (
            conn.execute(
                text(
                    "SELECT DISTINCT l.livemode FROM earnings e"
                    "  JOIN ledger_entries n ON n.transaction_id = e.ledger_transaction_id"
                    "  JOIN ledger_accounts a ON a.id = n.account_id"
                    "  JOIN ledgers l ON l.id = a.ledger_id WHERE e.seller_id = :test"
                ),
                {"test": worlds[False].ids["seller_id"]},
            )
            .scalars()
            .all()
        )
    assert sorted((r.livemode, r.ledger_livemode, r.platform) for r in rows) == [
        (False, False, True),
        (True, True, True),
    ]
    assert entries == [False]


def test_a_test_endpoint_gets_test_events_only(
    live: TestClient, test: TestClient, worlds: dict[bool, World]
) -> None:
    for livemode, client in ((True, live), (False, test)):
        endpoint = worlds[livemode].ids["endpoint_id"]
        deliveries = _everything(client, "/v1/webhook_deliveries", {"endpoint_id": endpoint})
        events = {d["event_id"] for d in deliveries}
        assert events and all(d["livemode"] is livemode for d in deliveries)
        for event_id in events:
            assert ok(client.get(f"/v1/events/{event_id}"))["livemode"] is livemode


def test_reconciliation_is_live_money_only(test: TestClient) -> None:
    answer = test.post(
        "/v1/reconciliation/statements",
        content=b"date,amount,currency,reference\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "live_mode_only")


# ------------------------------------------------------------------------- the responses


# 2xx answers that are not objects of the platform (no mode to tell).
NOT_OBJECTS = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/rail/webhooks"),  # the bank's, signed; no key
    ("post", "/v1/sellers/{seller_id}/payout_schedule/trigger"),  # {"workflow_id": ...}
}


def test_every_response_object_says_its_mode(app: FastAPI) -> None:
    """Every model a route answers with (and every item of a list) has a required boolean
    ``livemode``."""
    spec = app.openapi()
    schemas = spec["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = schema["$ref"].split("/")[-1]
        return name, schemas[name]

    checked = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2") or (method, path) in NOT_OBJECTS:
                    continue
                for media_type, content in response.get("content", {}).items():
                    if media_type != "application/json":  # a CSV or PDF rendering of one
                        continue
                    assert "$ref" in content["schema"], (method, path, "answers no model")
                    name, model = resolve(content["schema"])
                    if name.startswith("ListResponse"):
                        name, model = resolve(model["properties"]["items"]["items"])
                    properties = model.get("properties", {})
                    assert properties.get("livemode", {}).get("type") == "boolean", (path, name)
                    assert "livemode" in model.get("required", []), (path, name)
                    checked.add(name)
    assert len(checked) > 25
