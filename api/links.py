"""OpenAPI links: which response gives the ids that other operations take, declared in one table.

A link says, for example, that the ``id`` of ``POST /v1/sellers``'s 201 body is the
``{seller_id}`` of ``GET /v1/sellers/{seller_id}``. Clients and generators read them from the
schema; Schemathesis' stateful tests follow them, so item routes are called with ids that exist
(``tests/api/test_schemathesis.py``). ``document_links`` adds the table to the generated schema
once, naming each operation by method and path, so a link to a route that moved fails at schema
build, not silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

_ID = "$response.body#/id"


@dataclass(frozen=True)
class Link:
    """A link from a response to ``target`` (``"GET /v1/ledgers/{ledger_id}"``): ``parameters``
    by location and name (``path.ledger_id``), and request body fields, each a runtime
    expression (OpenAPI 3.1, "Link Object")."""

    target: str
    description: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    request_body: Mapping[str, Any] | None = None


def _seller(target: str, description: str) -> Link:
    return Link(target, description, {"path.seller_id": _ID})


def _earning(target: str, description: str) -> Link:
    return Link(
        target,
        description,
        {
            "path.seller_id": "$response.body#/seller_id",
            "path.order_id": "$response.body#/order_id",
        },
    )


def _wallet(target: str, description: str) -> Link:
    return Link(target, description, {"path.wallet_id": _ID})


def _of_wallet(target: str, description: str, item: str) -> Link:
    return Link(
        target,
        description,
        {"path.wallet_id": "$response.body#/wallet_id", f"path.{item}": _ID},
    )


# (source operation, status) -> link name -> link.
LINKS: Mapping[tuple[str, int], Mapping[str, Link]] = {
    ("POST /v1/ledgers", 201): {
        "GetLedger": Link(
            "GET /v1/ledgers/{ledger_id}", "The ledger created.", {"path.ledger_id": _ID}
        ),
        "CreateLedgerAccount": Link(
            "POST /v1/ledger_accounts",
            "An account in the ledger created.",
            request_body={"ledger_id": _ID},
        ),
        "ListLedgerAccounts": Link(
            "GET /v1/ledger_accounts", "The ledger's accounts.", {"query.ledger_id": _ID}
        ),
    },
    ("POST /v1/ledger_accounts", 201): {
        "GetLedgerAccount": Link(
            "GET /v1/ledger_accounts/{ledger_account_id}",
            "The account created, with its balances.",
            {"path.ledger_account_id": _ID},
        ),
        "CreateLedgerTransaction": Link(
            "POST /v1/ledger_transactions",
            "A transaction through the account created (debit and credit, so it balances).",
            request_body={
                "ledger_id": "$response.body#/ledger_id",
                "ledger_entries": [
                    {"ledger_account_id": _ID, "direction": "debit", "amount": 100},
                    {"ledger_account_id": _ID, "direction": "credit", "amount": 100},
                ],
            },
        ),
    },
    ("POST /v1/ledger_transactions", 201): {
        name: Link(target, description, {"path.ledger_transaction_id": _ID})
        for name, target, description in (
            (
                "GetLedgerTransaction",
                "GET /v1/ledger_transactions/{ledger_transaction_id}",
                "The transaction created.",
            ),
            (
                "UpdateLedgerTransaction",
                "PATCH /v1/ledger_transactions/{ledger_transaction_id}",
                "Post or archive it, or change its metadata.",
            ),
            (
                "ReverseLedgerTransaction",
                "POST /v1/ledger_transactions/{ledger_transaction_id}/reversal",
                "Reverse it.",
            ),
        )
    },
    ("POST /v1/sellers", 201): {
        "GetSeller": _seller("GET /v1/sellers/{seller_id}", "The seller created."),
        "UpdateSeller": _seller("PATCH /v1/sellers/{seller_id}", "Change its terms."),
        "GetSellerBalances": _seller("GET /v1/sellers/{seller_id}/balances", "Its balances."),
        "ListEarnings": _seller("GET /v1/sellers/{seller_id}/earnings", "Its earnings."),
        "ListHolds": _seller("GET /v1/sellers/{seller_id}/holds", "What its holds keep."),
        "CreateEarning": _seller("POST /v1/sellers/{seller_id}/earnings", "Book an earning."),
        "PutPayoutAccount": _seller(
            "PUT /v1/sellers/{seller_id}/payout_account", "Where it is paid."
        ),
        "OpenDispute": Link(
            "POST /v1/disputes", "A chargeback against it.", request_body={"seller_id": _ID}
        ),
    },
    ("POST /v1/sellers/{seller_id}/earnings", 201): {
        "GetEarning": _earning(
            "GET /v1/sellers/{seller_id}/earnings/{order_id}", "The earning booked."
        ),
        "ReleaseHold": _earning(
            "POST /v1/sellers/{seller_id}/holds/{order_id}/release", "Post it now."
        ),
        "ExtendHold": _earning(
            "POST /v1/sellers/{seller_id}/holds/{order_id}/extend", "Hold it longer."
        ),
        "CancelHold": _earning(
            "POST /v1/sellers/{seller_id}/holds/{order_id}/cancel", "Refund it in its hold."
        ),
        "RefundEarning": _earning(
            "POST /v1/sellers/{seller_id}/earnings/{order_id}/refund", "Refund (part of) it."
        ),
        "OpenDispute": Link(
            "POST /v1/disputes",
            "A chargeback of the order.",
            request_body={
                "seller_id": "$response.body#/seller_id",
                "order_id": "$response.body#/order_id",
            },
        ),
    },
    ("POST /v1/disputes", 201): {
        "GetDispute": Link(
            "GET /v1/disputes/{dispute_id}", "The dispute opened.", {"path.dispute_id": _ID}
        ),
        "ResolveDispute": Link(
            "POST /v1/disputes/{dispute_id}/resolve", "Win or lose it.", {"path.dispute_id": _ID}
        ),
    },
    ("PUT /v1/sellers/{seller_id}/payout_account", 200): {
        "GetPayoutAccount": Link(
            "GET /v1/sellers/{seller_id}/payout_account",
            "The account stored (masked).",
            {"path.seller_id": "$response.body#/seller_id"},
        ),
    },
    ("POST /v1/wallets", 201): {
        "GetWallet": _wallet("GET /v1/wallets/{wallet_id}", "The wallet created."),
        "GetWalletBalances": _wallet("GET /v1/wallets/{wallet_id}/balances", "Its balances."),
        "CreateTopUp": _wallet("POST /v1/wallets/{wallet_id}/top_ups", "Add money."),
        "ListTopUps": _wallet("GET /v1/wallets/{wallet_id}/top_ups", "Its money, by lot."),
        "CreateSpend": _wallet("POST /v1/wallets/{wallet_id}/spends", "Spend from it."),
        "ListSpends": _wallet("GET /v1/wallets/{wallet_id}/spends", "Its spends."),
    },
    ("POST /v1/wallets/{wallet_id}/top_ups", 201): {
        "GetTopUp": _of_wallet(
            "GET /v1/wallets/{wallet_id}/top_ups/{top_up_id}", "The top-up.", "top_up_id"
        ),
        "SettleTopUp": _of_wallet(
            "POST /v1/wallets/{wallet_id}/top_ups/{top_up_id}/settle",
            "Its funding arrived.",
            "top_up_id",
        ),
        "FailTopUp": _of_wallet(
            "POST /v1/wallets/{wallet_id}/top_ups/{top_up_id}/fail",
            "Its funding failed.",
            "top_up_id",
        ),
        "ChangeExpiry": _of_wallet(
            "POST /v1/wallets/{wallet_id}/top_ups/{top_up_id}/expiry",
            "Extend or cancel its expiry.",
            "top_up_id",
        ),
    },
    ("POST /v1/wallets/{wallet_id}/spends", 201): {
        "GetSpend": _of_wallet(
            "GET /v1/wallets/{wallet_id}/spends/{spend_id}", "The spend.", "spend_id"
        ),
        "RefundSpend": _of_wallet(
            "POST /v1/wallets/{wallet_id}/spends/{spend_id}/refunds",
            "Refund (part of) it.",
            "spend_id",
        ),
    },
    ("POST /v1/wallet_transfers", 201): {
        "GetWalletTransfer": Link(
            "GET /v1/wallet_transfers/{transfer_id}",
            "The transfer.",
            {"path.transfer_id": _ID},
        ),
    },
    ("POST /v1/webhook_endpoints", 201): {
        "GetWebhookEndpoint": Link(
            "GET /v1/webhook_endpoints/{endpoint_id}",
            "The endpoint created.",
            {"path.endpoint_id": _ID},
        ),
        "DeleteWebhookEndpoint": Link(
            "DELETE /v1/webhook_endpoints/{endpoint_id}", "Delete it.", {"path.endpoint_id": _ID}
        ),
    },
    ("POST /v1/test_clocks", 201): {
        "GetTestClock": Link(
            "GET /v1/test_clocks/{clock_id}", "The clock created.", {"path.clock_id": _ID}
        ),
        "AdvanceTestClock": Link(
            "POST /v1/test_clocks/{clock_id}/advance",
            "Move its time forward.",
            {"path.clock_id": _ID},
        ),
    },
}


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, operations in schema.get("paths", {}).items()
        for method, operation in operations.items()
    }


def add_links(schema: dict[str, Any], links: Mapping[tuple[str, int], Mapping[str, Link]]) -> None:
    """Add ``links`` to the responses of ``schema`` (idempotent). Raises ``LookupError`` for an
    operation or response the schema does not have."""
    operations = _operations(schema)

    def operation(name: str) -> dict[str, Any]:
        try:
            return operations[name]
        except KeyError:
            raise LookupError(f"api.links: no operation {name!r} in the schema") from None

    for (source, status), named in links.items():
        responses = operation(source).get("responses", {})
        if str(status) not in responses:
            raise LookupError(f"api.links: {source} documents no {status} response")
        declared = responses[str(status)].setdefault("links", {})
        for name, link in named.items():
            declared[name] = {
                "operationId": operation(link.target)["operationId"],
                "description": link.description,
                **({"parameters": dict(link.parameters)} if link.parameters else {}),
                **({"requestBody": link.request_body} if link.request_body is not None else {}),
            }


def document_links(app: FastAPI) -> None:
    """Add ``LINKS`` to the app's OpenAPI schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI caches it in app.openapi_schema
        add_links(schema, LINKS)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
