"""Every error the API returns, as ``application/problem+json`` (RFC 9457), mapped in one place.

A problem has ``type``, ``title``, ``status``, ``detail``, ``instance`` and a stable ``code`` that
clients branch on, plus extras that help (``errors`` for validation, ``unknown_parameters`` for
body fields no request model declares, ``account_id`` for a failed balance condition, ...).
Ledger, marketplace and workflow errors are mapped by their ``code`` (``DOMAIN_ERROR_STATUS``);
FastAPI's validation errors, Starlette's HTTP errors and anything unexpected are rendered the
same way. Temporal out of reach is a 503 ``temporal_unavailable`` (``api.workflow_calls``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger_core import LedgerError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Ledger domain error code -> HTTP status. 422: the request is well-formed but the ledger refuses
# it as asked (Modern Treasury also answers a failed balance lock with 422). 409: the request
# conflicts with the current state of the resource (already reversed, not pending any more, an
# external_id already used for something else).
LEDGER_ERROR_STATUS: Mapping[str, int] = {
    "not_found": 404,
    "validation_failed": 422,
    "unbalanced_transaction": 422,
    "currency_mismatch": 422,
    "insufficient_balance": 422,
    "invalid_state_transition": 409,
    "idempotency_conflict": 409,
    "already_reversed": 409,
    "immutable": 409,
    "statement_too_large": 422,
}

# Marketplace domain errors (marketplace.errors) and the codes the workflows answer with
# (temporal_calls.errors.WorkflowRequestError): an unknown seller, earning, hold or dispute is a 404
# (also when it belongs to another seller: a seller key must not learn that it exists); a request
# that conflicts with what exists or with the hold's or dispute's state is a 409.
MARKETPLACE_ERROR_STATUS: Mapping[str, int] = {
    "seller_not_found": 404,
    "earning_not_found": 404,
    "hold_not_found": 404,
    "dispute_not_found": 404,
    "seller_exists": 409,
    "earning_conflict": 409,
    "batch_rejected": 422,
    "dispute_conflict": 409,
    "invalid_earning_state": 409,
    "invalid_hold_state": 409,
    "dispute_already_resolved": 409,
    # Payouts and refunds (marketplace.payouts, temporal_calls.payouts).
    "payout_not_found": 404,
    "payout_account_not_found": 404,
    "refund_not_found": 404,
    "payout_account_missing": 422,
    "payout_account_failed": 422,
    "nothing_to_pay": 422,
    "instant_not_supported": 422,
    "instant_limit_exceeded": 422,
    "refund_exceeds_earning": 422,
    "payout_conflict": 409,
    "refund_conflict": 409,
    "invalid_payout_state": 409,
    "payout_schedule_not_found": 404,
    "statement_not_found": 404,
    "statement_unreadable": 422,
    # Webhooks to subscribers (marketplace.events).
    "webhook_endpoint_not_found": 404,
    "webhook_delivery_not_found": 404,
    "event_not_found": 404,
    "invalid_delivery_state": 409,
    # Wallets (marketplace.wallets): insufficient_balance and currency_mismatch are the ledger's.
    "wallet_not_found": 404,
    "top_up_not_found": 404,
    "spend_not_found": 404,
    "wallet_transfer_not_found": 404,
    "wallet_exists": 409,
    "top_up_not_pending": 409,
    "invalid_top_up_state": 409,
    "refund_exceeds_spend": 422,
    # Test clocks (marketplace.test_clocks).
    "test_clock_not_found": 404,
    "test_clock_exists": 409,
    "test_clock_advancing": 409,
    "test_clock_in_use": 409,
    "test_clock_time_not_later": 422,
}

DOMAIN_ERROR_STATUS: Mapping[str, int] = {**LEDGER_ERROR_STATUS, **MARKETPLACE_ERROR_STATUS}

# Codes for plain HTTP errors (unknown routes, wrong methods, ...).
HTTP_STATUS_CODE: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}

_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "code"})

PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"

# The problem body in OpenAPI. Extras (``errors``, ``account_id``, ...) are additional properties.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem; clients branch on the stable `code`.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "urn:payouts:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request's path."},
        "code": {"type": "string", "description": "Stable error code, e.g. `seller_not_found`."},
        "errors": {
            "type": "array",
            "description": "`validation_error`: each invalid field, `loc` its path; "
            "`batch_rejected`: each item that cannot be booked, `index` its place in the batch.",
            "items": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["loc", "msg", "type"],
                        "properties": {
                            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "msg": {"type": "string"},
                            "type": {
                                "type": "string",
                                "description": "`extra_forbidden`: unknown.",
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["index", "code", "detail"],
                        "properties": {
                            "index": {"type": "integer"},
                            "code": {"type": "string"},
                            "detail": {"type": "string"},
                        },
                    },
                ]
            },
        },
        "unknown_parameters": {
            "type": "array",
            "items": {"type": "string"},
            "description": "`validation_error`: the body's fields that the operation does not "
            "know, by path (`ledger_entries.0.memo`); the request did nothing.",
        },
    },
    "additionalProperties": True,
}

# The errors any authenticated route may answer, documented once for every route (``ApiRoute``).
ERROR_RESPONSES: Mapping[int, str] = {
    400: "Malformed request (e.g. a body that is not JSON): `malformed_json`, `bad_request`.",
    401: "No API key, or an invalid or revoked one: `unauthorized`.",
    403: "The key's role may not do this: `forbidden`.",
    404: "No such resource (or another seller's): `not_found`, `seller_not_found`, ...",
    409: "Conflicts with the current state or an earlier request (`conflict`, ...).",
    413: "The request body is too large: `payload_too_large`.",
    415: "Unsupported request content type: `unsupported_media_type`.",
    422: "Invalid input (`validation_error` with `errors`; unknown body fields are refused and "
    "named in `unknown_parameters`) or refused by the domain.",
    503: "A dependency (the database, Temporal) is down or contended: retry later.",
}


def problem_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these statuses, each an ``application/problem+json`` body."""
    return {
        status: {
            "description": ERROR_RESPONSES.get(status, _title(status)),
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status in statuses
    }


def document_problems(app: FastAPI) -> None:
    """Add the ``Problem`` schema that ``problem_responses`` refers to to the app's OpenAPI."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI caches it in app.openapi_schema
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class Problem(Exception):
    """Raise anywhere in the API to answer with this problem (and roll the request back)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extras: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.headers = dict(headers or {})
        self.extras = extras


def problem_type(code: str) -> str:
    """The problem ``type`` URI: a stable identifier, one per code (not a web page)."""
    return f"urn:payouts:problem:{code}"


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extras: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        k: v for k, v in jsonable_encoder(dict(extras or {})).items() if k not in _RESERVED
    }
    body.update(
        type=problem_type(code),
        title=title or _title(status),
        status=status,
        detail=detail,
        code=code,
    )
    if request is not None:
        body["instance"] = request.url.path
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def domain_error_status(code: str) -> int | None:
    """The HTTP status of a domain error code (ledger, marketplace, workflow), if it is one."""
    return DOMAIN_ERROR_STATUS.get(code)


def ledger_error_status(error: LedgerError) -> int:
    return DOMAIN_ERROR_STATUS.get(error.code, 422)


def _loc(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


# pydantic's error type for a field that a model with ``extra="forbid"`` does not declare.
UNKNOWN_FIELD_ERROR = "extra_forbidden"


def _parameter(loc: list[Any]) -> str:
    """A body field's path without the leading ``body``: ``ledger_entries.0.memo``."""
    return _loc(loc[1:] if loc[:1] == ["body"] else loc)


def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        reason = next(e for e in errors if e.get("type") == "json_invalid")
        position = reason.get("loc", ("body", "?"))[-1]
        message = (reason.get("ctx") or {}).get("error", "invalid JSON")
        return problem_response(
            request,
            400,
            "malformed_json",
            f"The request body is not valid JSON: {message} (at character {position}).",
        )
    if errors and all(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
        # An id that cannot exist (not a UUID) names no resource: the same answer as an unknown id.
        return problem_response(request, 404, "not_found", f"No resource at {request.url.path}.")
    simplified = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    # Unknown fields are named as Stripe names an unknown parameter: by their path in the body
    # (``ledger_entries.0.memo``), in the detail and in ``unknown_parameters``. The code stays
    # ``validation_error``, so a request with an unknown field and a bad value has one code.
    unknown = [_parameter(e["loc"]) for e in simplified if e["type"] == UNKNOWN_FIELD_ERROR]
    others = [e for e in simplified if e["type"] != UNKNOWN_FIELD_ERROR]
    parts = []
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        parts.append(f"Received unknown parameter{plural}: {', '.join(unknown)}.")
    if others or not unknown:
        first = others[0] if others else {"loc": [], "msg": "invalid request"}
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        parts.append(f"{_loc(first['loc'])}: {first['msg']}{more}")
    extras: dict[str, Any] = {"errors": simplified}
    if unknown:
        extras["unknown_parameters"] = unknown
    return problem_response(request, 422, "validation_error", " ".join(parts), extras=extras)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error the app can raise to a problem response."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            request,
            exc.status,
            exc.code,
            exc.detail,
            title=exc.title,
            headers=exc.headers,
            extras=exc.extras,
        )

    async def on_ledger_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LedgerError)
        return problem_response(
            request, ledger_error_status(exc), exc.code, exc.message, extras=exc.details
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        code = HTTP_STATUS_CODE.get(status, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else _title(status)
        if status == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}."
        elif status == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}."
        return problem_response(request, status, code, detail, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "internal_error", "An unexpected error occurred.")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(LedgerError, on_ledger_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
