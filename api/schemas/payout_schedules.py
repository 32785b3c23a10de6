"""``/v1/sellers/{id}/payout_schedule``: a seller's payout schedule and its recent runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from api.schemas.common import Attributes, ObjectOut, RequestModel, ResponseModel


class PayoutScheduleIn(RequestModel):
    interval: Literal["daily", "weekly", "monthly", "manual"]
    weekly_anchor: str | None = Field(None, description="weekly: monday .. sunday")
    monthly_anchor: int | None = Field(
        None, description="monthly: 1-31; the month's last day when the month is shorter"
    )
    time_of_day: str = Field("09:00", description="HH:MM (24-hour) in time_zone")
    time_zone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin")
    minimum_amount: int = Field(
        0, ge=0, lt=2**63, description="minor units; a run pays only from this amount on"
    )


class NoteIn(RequestModel):
    note: str | None = Field(None, max_length=1000)


class PauseIn(RequestModel):
    note: str = Field(min_length=1, max_length=1000, description="why (shown to operators)")


class PayoutRunOut(ResponseModel):
    id: str
    scheduled_at: datetime
    outcome: Literal["started", "skipped"]
    payout_id: str | None
    amount: int | None
    reason: str | None
    created_at: datetime


class PayoutNow(ResponseModel):
    """What a run would do now."""

    amount: int = Field(description="minor units a run would pay now (0: nothing)")
    reason: str | None = Field(
        description="why nothing: no_payout_account, negative_balance, nothing_available, "
        "below_minimum"
    )
    available: int
    currency: str


class PayoutScheduleOut(ObjectOut):
    seller_id: str
    schedule_id: str
    interval: str
    weekly_anchor: str | None
    monthly_anchor: int | None
    time_of_day: str
    time_zone: str
    minimum_amount: int
    paused: bool
    note: str | None
    next_run_times: list[datetime]
    test_clock: str | None = Field(
        default=None,
        validation_alias="test_clock_id",
        description="The seller's test clock: the schedule fires as the clock advances (no "
        "next_run_times by wall time).",
    )
    runs_started: int = Field(validation_alias="runs")
    runs_skipped_overlapping: int = Field(validation_alias="skipped_overlapping")
    payout_now: PayoutNow | None = None
    recent_runs: list[PayoutRunOut] = []

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        """``temporal_calls.schedules.PayoutScheduleInfo``: the spec's fields at the top."""
        return Attributes(data, data.spec)
