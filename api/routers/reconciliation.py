"""``/v1/reconciliation/statements``: bank statements matched against the payouts
(``marketplace.reconciliation``; the CSV format and the rules are documented there and in the
README). Platform keys (admin, operator) only.

``POST`` takes the CSV as the raw request body with ``Content-Type: text/csv`` (and an optional
``?filename=``), answers 201 with the report, and keeps it; ``GET .../{id}`` reads it again. A
file that is not a statement CSV is a 422 ``statement_unreadable`` naming the line.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.dependencies import DbConnection
from api.problems import Problem
from api.routing import ApiRoute
from api.scoping import PlatformAccess
from marketplace.reconciliation import (
    ReconciliationLine,
    ReconciliationReport,
    get_statement,
    reconcile_statement,
)

router = APIRouter(
    prefix="/v1/reconciliation/statements",
    tags=["reconciliation"],
    route_class=ApiRoute,
    dependencies=[PlatformAccess],
)

CSV_TYPES = ("text/csv", "application/csv")


class ReconciliationLineOut(BaseModel):
    line_number: int
    result: str
    value_date: date | None
    amount: int | None
    currency: str | None
    reference: str | None
    payout_id: str | None
    expected_amount: int | None
    detail: str | None

    @classmethod
    def of(cls, line: ReconciliationLine) -> ReconciliationLineOut:
        return cls(
            line_number=line.line_number,
            result=line.result,
            value_date=line.value_date,
            amount=line.amount,
            currency=line.currency,
            reference=line.reference,
            payout_id=line.payout_id,
            expected_amount=line.expected_amount,
            detail=line.detail,
        )


class ReconciliationReportOut(BaseModel):
    id: str
    filename: str | None
    content_sha256: str
    line_count: int
    period_start: date | None
    period_end: date | None
    all_matched: bool
    counts: dict[str, int]
    lines: list[ReconciliationLineOut]
    created_at: datetime | None

    @classmethod
    def of(cls, report: ReconciliationReport) -> ReconciliationReportOut:
        return cls(
            id=report.id,
            filename=report.filename,
            content_sha256=report.content_sha256,
            line_count=report.line_count,
            period_start=report.period_start,
            period_end=report.period_end,
            all_matched=report.all_matched,
            counts=report.counts,
            lines=[ReconciliationLineOut.of(line) for line in report.lines],
            created_at=report.created_at,
        )


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
    return ReconciliationReportOut.of(report)


@router.get("/{statement_id}")
def read_statement(statement_id: str, conn: DbConnection) -> ReconciliationReportOut:
    return ReconciliationReportOut.of(get_statement(conn, statement_id))
