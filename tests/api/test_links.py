"""The OpenAPI links of ``api.links``: in the app's schema, naming operations that exist, and
refused when they name one that does not (the stateful Schemathesis run follows them)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi import FastAPI

from api.links import LINKS, Link, add_links


def test_the_schema_declares_every_link(app: FastAPI) -> None:
    schema = app.openapi()
    operation_ids = {
        operation["operationId"]
        for operations in schema["paths"].values()
        for operation in operations.values()
    }
    declared = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                for name, link in response.get("links", {}).items():
                    declared[f"{method.upper()} {path}", int(status), name] = link
    expected = {
        (source, status, name) for (source, status), links in LINKS.items() for name in links
    }
    assert set(declared) == expected
    assert {link["operationId"] for link in declared.values()} <= operation_ids
    seller = declared["POST /v1/sellers", 201, "GetSeller"]
    assert seller["parameters"] == {"path.seller_id": "$response.body#/id"}
    assert seller["operationId"] == operation_ids_of(schema)["GET /v1/sellers/{seller_id}"]


def operation_ids_of(schema: dict[str, Any]) -> dict[str, str]:
    return {
        f"{method.upper()} {path}": operation["operationId"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }


@pytest.mark.parametrize(
    "links",
    [
        {("POST /v1/nowhere", 201): {"X": Link("GET /v1/ledgers/{ledger_id}", "x")}},
        {("POST /v1/ledgers", 201): {"X": Link("GET /v1/nowhere/{id}", "x")}},
        {("POST /v1/ledgers", 299): {"X": Link("GET /v1/ledgers/{ledger_id}", "x")}},
    ],
)
def test_a_link_to_an_unknown_operation_or_response_is_refused(
    app: FastAPI, links: dict[tuple[str, int], dict[str, Link]]
) -> None:
    with pytest.raises(LookupError):
        add_links(copy.deepcopy(app.openapi()), links)
