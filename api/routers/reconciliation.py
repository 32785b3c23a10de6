"""``/v1/reconciliation/statements``: bank statements matched against the payouts
(``marketplace.reconciliation``; the CSV format and the rules are documented there and in
docs/api/reconciliation.md). Platform keys (admin, operator) only.

``POST`` takes the CSV as the raw request body with ``Content-Type: text/csv`` (and an optional
``?filename=``), answers 201 with the report, and keeps it; ``GET .../{id}`` reads it again. A
file that is not a statement CSV is a 422 ``statement_unreadable`` naming the line.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.dependencies import DbConnection
from api.modes import LiveModeOnly
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas.reconciliation import ReconciliationReportOut
from api.scoping import PlatformAccess
from marketplace.reconciliation import (
    get_statement,
    reconcile_statement,
)

router = APIRouter(
    prefix="/v1/reconciliation/statements",
    tags=["reconciliation"],
    route_class=ApiRoute,
    # Bank statements are about live money: a test key gets a 403 ``live_mode_only``.
    dependencies=[PlatformAccess, LiveModeOnly],
)

CSV_TYPES = ("text/csv", "application/csv")


@router.post(
    "",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "date,amount,currency,reference\n2027-03-01,2500,USD,po_123\n",
                }
            },
        }
    },
)
async def create_statement(
    request: Request,
    conn: DbConnection,
    response: Response,
    filename: Annotated[str | None, Query(max_length=255)] = None,
) -> ReconciliationReportOut:
    """Reconcile a bank statement (CSV body: ``date,amount,currency,reference``, amounts as
    integers in minor units) and keep the report."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CSV_TYPES:
        raise Problem(
            415,
            "unsupported_media_type",
            "Send the statement as the request body with Content-Type: text/csv.",
        )
    content = await request.body()
    report = await run_in_threadpool(reconcile_statement, conn, content, filename=filename)
    response.headers["Location"] = f"/v1/reconciliation/statements/{report.id}"
    return ReconciliationReportOut.model_validate(report)


@router.get("/{statement_id}")
def read_statement(statement_id: str, conn: DbConnection) -> ReconciliationReportOut:
    return ReconciliationReportOut.model_validate(get_statement(conn, statement_id))
