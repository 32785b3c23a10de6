"""``next_firing``, the firings a test clock's advance computes for a seller's payout schedule,
against the Temporal server's own next run times for the same spec (the calendars the schedule of
a seller on the wall clock gets): the same instants across daylight saving changes, on the
weekday, and on the month's last day for days 29-31 in short months and February."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import Client

from contracts.payout_runs import PayoutScheduleSpec
from temporal_calls.schedules import delete_payout_schedule, next_firing, put_payout_schedule


def firings(spec: PayoutScheduleSpec, after: datetime, count: int = 10) -> list[datetime]:
    found: list[datetime] = []
    at = after - timedelta(microseconds=1)  # the server counts a firing at starts_at itself
    while len(found) < count:
        firing = next_firing(spec, at)
        assert firing is not None
        found.append(firing)
        at = firing
    return found


@pytest.mark.parametrize(
    ("spec", "starts_at"),
    [
        ({"interval": "daily", "time_zone": "America/New_York"}, datetime(2027, 3, 9, tzinfo=UTC)),
        (
            {"interval": "weekly", "weekly_anchor": "friday", "time_zone": "Europe/Berlin"},
            datetime(2027, 3, 1, tzinfo=UTC),
        ),
        ({"interval": "monthly", "monthly_anchor": 31}, datetime(2027, 11, 1, tzinfo=UTC)),
        ({"interval": "monthly", "monthly_anchor": 30}, datetime(2028, 1, 1, tzinfo=UTC)),
        (
            {"interval": "monthly", "monthly_anchor": 15, "time_zone": "Asia/Tokyo"},
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
    ],
)
async def test_next_firing_agrees_with_the_server(
    temporal_client: Client, spec: dict[str, Any], starts_at: datetime
) -> None:
    seller = f"firing-{uuid.uuid4().hex[:10]}"
    spec = {"time_of_day": "09:00", **spec}
    info = await put_payout_schedule(temporal_client, seller, starts_at=starts_at, **spec)
    try:
        assert len(info.next_run_times) == 10
        assert firings(info.spec, starts_at) == info.next_run_times
    finally:
        await delete_payout_schedule(temporal_client, seller)


def test_manual_never_fires() -> None:
    assert next_firing(PayoutScheduleSpec(interval="manual"), datetime.now(UTC)) is None
