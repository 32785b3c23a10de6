"""Request bodies are strict: a field no request model declares is a 422 problem naming it, in the
OpenAPI schema (``additionalProperties: false``) and on the wire, and nothing is written.

The schema walk covers every request body of the app, so a future model that derives from
``BaseModel`` instead of ``api.schemas.RequestModel`` fails here.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import SellerAndCash
from tests.api.helpers import (
    amounts,
    assert_problem,
    post_transaction,
    transaction_count,
    transfer,
)

JsonSchema = dict[str, Any]
ACCOUNT = {"account_number": "0001234", "routing_number": "110000000", "holder_name": "J"}


def _object_schemas(
    schema: JsonSchema, components: dict[str, JsonSchema], path: str, seen: set[str]
) -> list[tuple[str, JsonSchema]]:
    """Every object schema with declared properties (a model) reachable from ``schema``, by path.
    A free-form dict (``metadata``: no properties) is not a model; its values are walked."""
    ref = schema.get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _object_schemas(components[name], components, f"{path}<{name}>", seen | {name})
    found: list[tuple[str, JsonSchema]] = []
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, []):
            found += _object_schemas(sub, components, path, seen)
    if isinstance(schema.get("items"), dict):
        found += _object_schemas(schema["items"], components, f"{path}[]", seen)
    if "properties" in schema:
        found.append((path, schema))
        for name, sub in schema["properties"].items():
            found += _object_schemas(sub, components, f"{path}.{name}", seen)
    elif isinstance(schema.get("additionalProperties"), dict):
        found += _object_schemas(schema["additionalProperties"], components, f"{path}{{}}", seen)
    return found


def request_body_models(openapi: JsonSchema) -> list[tuple[str, JsonSchema]]:
    components = openapi.get("components", {}).get("schemas", {})
    found: list[tuple[str, JsonSchema]] = []
    for route, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                where = f"{method.upper()} {route} {media_type} "
                found += _object_schemas(content.get("schema", {}), components, where, set())
    return found


def test_every_request_body_schema_forbids_unknown_fields(app: FastAPI) -> None:
    models = request_body_models(app.openapi())
    lenient = [path for path, schema in models if schema.get("additionalProperties") is not False]
    assert lenient == [], "request models must derive from api.schemas.RequestModel"
    # The walk reaches nested models (and so cannot pass by finding nothing).
    names = {schema.get("title") for _, schema in models}
    assert {
        "SellerCreate",
        "RollingReserveIn",
        "LedgerTransactionCreate",
        "LedgerEntryCreate",
        "BalanceBound",
        "PayoutCreate",
        "PayoutAccountIn",
        "RefundCreate",
        "NoteIn",
        "WebhookEndpointCreate",
    } <= names


def test_free_form_metadata_is_not_a_model(app: FastAPI) -> None:
    """``metadata`` takes any keys: the walk sees it as a dict, not as a strict model."""
    paths = [path for path, _ in request_body_models(app.openapi())]
    assert not any(path.endswith(".metadata") for path in paths)


def unknown_parameter_problem(response: Any, *names: str) -> dict[str, Any]:
    problem = assert_problem(response, 422, "validation_error")
    assert sorted(problem["unknown_parameters"]) == sorted(names)
    for name in names:
        assert name in problem["detail"]
        loc = ["body", *(int(p) if p.isdigit() else p for p in name.split("."))]
        assert {"loc": loc, "type": "extra_forbidden"}.items() <= next(
            e for e in problem["errors"] if e["loc"] == loc
        ).items()
    return problem


def new_seller(client: TestClient) -> str:
    seller = f"strict-{uuid.uuid4().hex[:10]}"
    created = client.post("/v1/sellers", json={"id": seller, "name": "Shop", "currency": "USD"})
    assert created.status_code == 201, created.text
    return seller


def test_a_payout_with_an_unknown_field_is_refused(client: TestClient) -> None:
    seller = new_seller(client)
    response = client.post(f"/v1/sellers/{seller}/payouts", json={"rail": "rtp"})
    unknown_parameter_problem(response, "rail")
    # A method the API does not know is refused too.
    response = client.post(f"/v1/sellers/{seller}/payouts", json={"method": "overnight"})
    assert_problem(response, 422, "validation_error")
    assert client.get("/v1/payouts", params={"seller_id": seller}).json()["items"] == []
    # A known body, free-form metadata included, passes validation: this app has no Temporal.
    known = {"amount": 100, "metadata": {"any": {"nested": [1, True]}}}
    response = client.post(f"/v1/sellers/{seller}/payouts", json=known)
    assert_problem(response, 503, "temporal_unavailable")


def test_a_seller_with_unknown_fields_is_not_created(client: TestClient) -> None:
    seller = f"strict-{uuid.uuid4().hex[:10]}"
    body = {
        "id": seller,
        "name": "Shop",
        "currency": "USD",
        "colour": "blue",
        "rolling_reserve": {"percent": 10, "period": "P30D", "cap": 500},
    }
    response = client.post("/v1/sellers", json=body)
    unknown_parameter_problem(response, "colour", "rolling_reserve.cap")
    assert_problem(client.get(f"/v1/sellers/{seller}"), 404, "seller_not_found")
    # Metadata keys are the caller's own.
    body = {"id": seller, "name": "Shop", "currency": "USD", "metadata": {"colour": "blue"}}
    assert client.post("/v1/sellers", json=body).status_code == 201


def test_a_ledger_entry_with_an_unknown_field_writes_nothing(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, payable, cash = seller_and_cash
    debit, credit = transfer(cash, payable, 2500)
    response = post_transaction(client, ledger_id, [debit, credit | {"memo": "order 7"}])
    unknown_parameter_problem(response, "ledger_entries.1.memo")
    assert transaction_count(client, ledger_id) == 0
    assert amounts(client, payable["id"]) == {"pending": 0, "posted": 0, "available": 0}


def test_unknown_and_invalid_fields_are_one_problem(
    client: TestClient, seller_and_cash: SellerAndCash
) -> None:
    ledger_id, payable, cash = seller_and_cash
    debit, credit = transfer(cash, payable, 2500)
    entries = [debit | {"amount": 0}, credit]
    response = post_transaction(client, ledger_id, entries, memo="x")
    problem = unknown_parameter_problem(response, "memo")
    assert ["body", "ledger_entries", 0, "amount"] in [e["loc"] for e in problem["errors"]]
    assert transaction_count(client, ledger_id) == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "unknown"),
    [
        ("PUT", "/v1/sellers/{seller}/payout_account", {**ACCOUNT, "x": 1}, "x"),
        ("POST", "/v1/sellers/{seller}/earnings/o-1/refund", {"amount": 1, "why": "x"}, "why"),
        ("POST", "/v1/sellers/{seller}/payout_schedule/resume", {"comment": "ok"}, "comment"),
        ("PATCH", "/v1/sellers/{seller}", {"hold_period": "P1D", "hold_days": 1}, "hold_days"),
        (
            "POST",
            "/v1/webhook_endpoints",
            {"url": "http://x.test", "event_types": ["*"], "y": 0},
            "y",
        ),
    ],
)
def test_unknown_fields_are_refused_on_every_kind_of_body(
    client: TestClient, method: str, path: str, body: dict[str, Any], unknown: str
) -> None:
    seller = new_seller(client)
    before = client.get(f"/v1/sellers/{seller}").json()
    response = client.request(method, path.format(seller=seller), json=body)
    unknown_parameter_problem(response, unknown)
    assert client.get(f"/v1/sellers/{seller}").json() == before
    no_account = client.get(f"/v1/sellers/{seller}/payout_account")
    assert_problem(no_account, 404, "payout_account_not_found")
