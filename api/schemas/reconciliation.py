"""``/v1/reconciliation/statements``: a bank statement's reconciliation report."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from api.schemas.common import ObjectOut, ResponseModel


class ReconciliationLineOut(ResponseModel):
    line_number: int
    result: str
    value_date: date | None
    amount: int | None
    currency: str | None
    reference: str | None
    payout_id: str | None
    expected_amount: int | None
    detail: str | None
    items_url: str | None = Field(
        default=None, description="Matched: what the payout paid for (its items)."
    )
    item_count: int | None = Field(
        default=None, description="Matched: its number of items (null: not itemized)."
    )


class ReconciliationReportOut(ObjectOut):
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
