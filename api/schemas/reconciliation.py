"""``/v1/reconciliation/statements``: a bank statement's reconciliation report."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from marketplace.reconciliation import ReconciliationLine, ReconciliationReport


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
