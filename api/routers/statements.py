"""``GET /v1/sellers/{id}/statement`` and ``GET /v1/wallets/{id}/statement``: the posted balance
over a period of calendar days (``marketplace.statements``), as JSON, CSV or PDF by ``Accept``
(``api.statement_formats``). Reads only (plain ``def``: one statement in the database's
autocommit mode, so the figures come from one snapshot).

Visibility as the other seller and wallet reads: a seller key reads its own seller's statement,
a wallet key its own wallet's; another's is the 404 of an unknown one.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.problems import problem_responses
from api.routing import ApiRoute
from api.schemas.statements import StatementOut
from api.scoping import (
    AnyRole,
    MarketplaceDep,
    WalletReadAccess,
    check_seller_visible,
    check_wallet_visible,
)
from api.statement_formats import (
    CSV,
    JSON,
    PDF,
    filename,
    negotiate,
    to_csv,
    to_pdf,
)
from ledger_core import ValidationFailed
from marketplace.statements import BalanceStatement, StatementPeriod, Statements, statement_period

router = APIRouter(prefix="/v1", tags=["statements"], route_class=ApiRoute)

From = Annotated[
    date | None,
    Query(alias="from", description="The first day of the period (YYYY-MM-DD). Required."),
]
To = Annotated[
    date | None,
    Query(description="The last day of the period, inclusive (at most 366 days). Required."),
]
TimeZone = Annotated[
    str, Query(description="The IANA zone the days are in (default UTC).", max_length=64)
]

_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            CSV: {"schema": {"type": "string"}},
            PDF: {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "The statement: JSON by default, CSV or PDF by `Accept`.",
    },
    **problem_responses([406]),
}
_FORMATS[406]["description"] = (
    "`not_acceptable`: the Accept header allows none of application/json, text/csv, "
    "application/pdf."
)


def _period(from_: date | None, to: date | None, time_zone: str) -> StatementPeriod:
    if from_ is None or to is None:
        missing = "from" if from_ is None else "to"
        raise ValidationFailed(
            "a statement needs a period: from and to (YYYY-MM-DD, inclusive)", field=missing
        )
    return statement_period(from_, to, time_zone)


def _answer(statement: BalanceStatement, media_type: str) -> Response:
    headers = {"Statement-Digest": statement.digest}
    if media_type == JSON:
        body = StatementOut.model_validate(statement).model_dump_json(by_alias=True)
        return Response(body, media_type=JSON, headers=headers)
    if media_type == CSV:
        headers["Content-Disposition"] = f'attachment; filename="{filename(statement, "csv")}"'
        return Response(to_csv(statement), media_type="text/csv; charset=utf-8", headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{filename(statement, "pdf")}"'
    return Response(to_pdf(statement), media_type=PDF, headers=headers)


@router.get(
    "/sellers/{seller_id}/statement",
    dependencies=[AnyRole],
    response_model=StatementOut,
    responses=_FORMATS,
)
def get_seller_statement(
    seller_id: str,
    request: Request,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    from_: From = None,
    to: To = None,
    time_zone: TimeZone = "UTC",
) -> Response:
    """The seller's posted balance over the days ``from`` to ``to``: the opening balance, every
    posted entry of the period in order with its kind, reference, signed amount and running
    balance, the closing balance, and what is held back at the close (reserves, open disputes,
    payouts in transit; outside the arithmetic). A period closed is the same document however
    often it is asked (``digest``); a line counts at its statement time (docs: Statements).
    More than 10,000 lines: 422 ``statement_too_large``."""
    check_seller_visible(principal, seller_id)
    media_type = negotiate(request.headers.get("accept"))
    period = _period(from_, to, time_zone)
    return _answer(Statements(market).seller_statement(conn, seller_id, period), media_type)


@router.get(
    "/wallets/{wallet_id}/statement",
    dependencies=[WalletReadAccess],
    response_model=StatementOut,
    responses=_FORMATS,
)
def get_wallet_statement(
    wallet_id: str,
    request: Request,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    from_: From = None,
    to: To = None,
    time_zone: TimeZone = "UTC",
) -> Response:
    """The wallet's posted balance over the days ``from`` to ``to``: opening, every posted entry
    (top-ups once settled, spends, spend refunds, transfers in and out, expiries, adjustments)
    with its running balance, closing. JSON, CSV or PDF by ``Accept``, as for sellers."""
    check_wallet_visible(principal, wallet_id)
    media_type = negotiate(request.headers.get("accept"))
    period = _period(from_, to, time_zone)
    return _answer(Statements(market).wallet_statement(conn, wallet_id, period), media_type)
