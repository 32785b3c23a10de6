"""``/v1/sellers/{id}/payout_schedule``: a seller's payout schedule and its recent runs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import RequestModel
from marketplace.payout_runs import PayoutRun


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


class PayoutRunOut(BaseModel):
    id: str
    scheduled_at: datetime
    outcome: Literal["started", "skipped"]
    payout_id: str | None
    amount: int | None
    reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, run: PayoutRun) -> PayoutRunOut:
        return cls(
            id=run.id,
            scheduled_at=run.scheduled_at,
            outcome="started" if run.outcome == "started" else "skipped",
            payout_id=run.payout_id,
            amount=run.amount,
            reason=run.reason,
            created_at=run.created_at,
        )


class PayoutNow(BaseModel):
    """What a run would do now."""

    amount: int = Field(description="minor units a run would pay now (0: nothing)")
    reason: str | None = Field(
        description="why nothing: no_payout_account, negative_balance, nothing_available, "
        "below_minimum"
    )
    available: int
    currency: str


class PayoutScheduleOut(BaseModel):
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
    runs_started: int
    runs_skipped_overlapping: int
    payout_now: PayoutNow | None = None
    recent_runs: list[PayoutRunOut] = []
