"""The schedule calendars, checked against the Temporal server's own computation: the next run
times ``describe`` returns (``ScheduleDescription.info.next_action_times``) must be exactly the
instants a seller expects, computed here independently with ``zoneinfo``.

Why not the time-skipping test server: it does not implement Schedules (CreateSchedule answers
"unimplemented"), and the dev server's per-workflow time skipping does not move a schedule's own
clock. So the calendar math is proven here through the server's next run times (``starts_at``
moves the window to the months that matter: February of a leap and a common year, DST changes),
and ``test_payout_runs.py`` watches real firings at chosen seconds on the dev server.
"""

from __future__ import annotations

import calendar
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client

from temporal_calls.errors import WorkflowRequestError
from temporal_calls.schedules import (
    delete_payout_schedule,
    describe_payout_schedule,
    pause_payout_schedule,
    put_payout_schedule,
    resume_payout_schedule,
)

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def expected_runs(
    starts_at: datetime,
    *,
    interval: str,
    at: time,
    zone: str,
    weekly_anchor: str | None = None,
    monthly_anchor: int | None = None,
    count: int = 10,
) -> list[datetime]:
    """The first ``count`` run instants (UTC) after ``starts_at``, by walking the local calendar
    day by day: the rule as a seller reads it, not as the schedule spec encodes it."""
    tz = ZoneInfo(zone)
    day = starts_at.astimezone(tz).date()
    runs: list[datetime] = []
    while len(runs) < count:
        if interval == "daily":
            due = True
        elif interval == "weekly":
            due = WEEKDAYS[day.weekday()] == weekly_anchor
        else:
            assert monthly_anchor is not None
            last = calendar.monthrange(day.year, day.month)[1]
            due = day.day == min(monthly_anchor, last)
        instant = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        if due and instant >= starts_at:
            runs.append(instant)
        day += timedelta(days=1)
    return runs


def seller() -> str:
    return f"cal-{uuid.uuid4().hex[:10]}"


async def next_runs(client: Client, seller_id: str, **spec: object) -> list[datetime]:
    info = await put_payout_schedule(client, seller_id, **spec)  # type: ignore[arg-type]
    try:
        assert len(info.next_run_times) == 10
        return info.next_run_times
    finally:
        await delete_payout_schedule(client, seller_id)


@pytest.mark.parametrize(
    ("zone", "starts_at"),
    [
        # New York springs forward on 2027-03-14: 09:00 local moves from 14:00Z to 13:00Z.
        ("America/New_York", datetime(2027, 3, 9, tzinfo=UTC)),
        # Berlin falls back on 2027-10-31: 09:00 local moves from 07:00Z to 08:00Z.
        ("Europe/Berlin", datetime(2027, 10, 26, tzinfo=UTC)),
        ("UTC", datetime(2027, 6, 1, tzinfo=UTC)),
    ],
)
async def test_daily_at_local_time_across_dst(
    temporal_client: Client, zone: str, starts_at: datetime
) -> None:
    runs = await next_runs(
        temporal_client,
        seller(),
        interval="daily",
        time_of_day="09:00",
        time_zone=zone,
        starts_at=starts_at,
    )
    assert runs == expected_runs(starts_at, interval="daily", at=time(9), zone=zone)
    assert {r.astimezone(ZoneInfo(zone)).time() for r in runs} == {time(9)}
    if zone != "UTC":
        assert len({r.time() for r in runs}) == 2  # the UTC hour changes with DST


async def test_weekly_on_the_anchor_weekday(temporal_client: Client) -> None:
    starts_at = datetime(2027, 3, 1, tzinfo=UTC)
    runs = await next_runs(
        temporal_client,
        seller(),
        interval="weekly",
        weekly_anchor="Friday",
        time_of_day="17:30",
        time_zone="Europe/Berlin",
        starts_at=starts_at,
    )
    expected = expected_runs(
        starts_at, interval="weekly", weekly_anchor="friday", at=time(17, 30), zone="Europe/Berlin"
    )
    assert runs == expected
    assert runs[0] == datetime(2027, 3, 5, 16, 30, tzinfo=UTC)  # 17:30 CET
    assert datetime(2027, 4, 2, 15, 30, tzinfo=UTC) in runs  # 17:30 CEST


async def test_monthly_on_a_day_every_month_has(temporal_client: Client) -> None:
    starts_at = datetime(2027, 1, 1, tzinfo=UTC)
    runs = await next_runs(
        temporal_client,
        seller(),
        interval="monthly",
        monthly_anchor=15,
        time_of_day="06:00",
        time_zone="Asia/Tokyo",
        starts_at=starts_at,
    )
    assert runs == expected_runs(
        starts_at, interval="monthly", monthly_anchor=15, at=time(6), zone="Asia/Tokyo"
    )
    assert runs[0] == datetime(2027, 1, 14, 21, 0, tzinfo=UTC)  # 06:00 JST on the 15th


@pytest.mark.parametrize("anchor", [29, 30, 31])
@pytest.mark.parametrize("year", [2027, 2028])  # a common year and a leap year
async def test_monthly_late_anchor_falls_back_to_the_last_day(
    temporal_client: Client, anchor: int, year: int
) -> None:
    starts_at = datetime(year, 1, 10, tzinfo=UTC)
    runs = await next_runs(
        temporal_client,
        seller(),
        interval="monthly",
        monthly_anchor=anchor,
        time_of_day="12:00",
        time_zone="UTC",
        starts_at=starts_at,
    )
    assert runs == expected_runs(
        starts_at, interval="monthly", monthly_anchor=anchor, at=time(12), zone="UTC"
    )
    days = {(r.month, r.day) for r in runs}
    february = 29 if year == 2028 else 28
    assert (2, february) in days  # the 31st (30th, 29th) in February: its last day, once
    assert sum(1 for r in runs if r.month == 2) == 1
    assert (4, min(anchor, 30)) in days  # the 31st in April is the 30th
    assert (3, anchor) in days


async def test_the_31st_in_february_around_midnight_in_a_far_zone(
    temporal_client: Client,
) -> None:
    """23:30 in Honolulu on Feb 28 is already March 1st in UTC: the day is the seller's."""
    starts_at = datetime(2027, 2, 2, tzinfo=UTC)
    runs = await next_runs(
        temporal_client,
        seller(),
        interval="monthly",
        monthly_anchor=31,
        time_of_day="23:30",
        time_zone="Pacific/Honolulu",
        starts_at=starts_at,
    )
    assert runs[0] == datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
    assert runs[0].astimezone(ZoneInfo("Pacific/Honolulu")).date() == date(2027, 2, 28)
    assert runs == expected_runs(
        starts_at, interval="monthly", monthly_anchor=31, at=time(23, 30), zone="Pacific/Honolulu"
    )


async def test_manual_and_paused_have_no_next_runs(temporal_client: Client) -> None:
    seller_id = seller()
    info = await put_payout_schedule(temporal_client, seller_id, interval="manual")
    assert info.spec.interval == "manual"
    assert info.next_run_times == []

    daily = await put_payout_schedule(temporal_client, seller_id, interval="daily")
    assert len(daily.next_run_times) == 10
    await pause_payout_schedule(temporal_client, seller_id, "payout returned: check the account")
    paused = await describe_payout_schedule(temporal_client, seller_id)
    assert paused.paused
    assert paused.note == "payout returned: check the account"
    assert paused.next_run_times == []

    # Putting the spec again keeps the pause (and its note); resume lifts it.
    again = await put_payout_schedule(
        temporal_client, seller_id, interval="weekly", weekly_anchor="monday"
    )
    assert again.paused and again.note == "payout returned: check the account"
    assert again.spec.weekly_anchor == "monday"
    await resume_payout_schedule(temporal_client, seller_id, "account fixed")
    resumed = await describe_payout_schedule(temporal_client, seller_id)
    assert not resumed.paused and resumed.note == "account fixed"
    assert all(r.astimezone(UTC).weekday() == 0 for r in resumed.next_run_times)

    await delete_payout_schedule(temporal_client, seller_id)
    with pytest.raises(WorkflowRequestError) as err:
        await describe_payout_schedule(temporal_client, seller_id)
    assert err.value.code == "payout_schedule_not_found"


async def test_put_is_idempotent(temporal_client: Client) -> None:
    seller_id = seller()
    spec = {"interval": "monthly", "monthly_anchor": 31, "minimum_amount": 5000}
    first = await put_payout_schedule(temporal_client, seller_id, **spec)  # type: ignore[arg-type]
    second = await put_payout_schedule(temporal_client, seller_id, **spec)  # type: ignore[arg-type]
    assert first.spec == second.spec
    assert first.next_run_times == second.next_run_times
    assert second.spec.minimum_amount == 5000
    await delete_payout_schedule(temporal_client, seller_id)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"interval": "hourly"}, "interval"),
        ({"interval": "weekly"}, "weekly_anchor"),
        ({"interval": "weekly", "weekly_anchor": "funday"}, "weekly_anchor"),
        ({"interval": "daily", "weekly_anchor": "monday"}, "weekly_anchor"),
        ({"interval": "monthly"}, "monthly_anchor"),
        ({"interval": "monthly", "monthly_anchor": 32}, "monthly_anchor"),
        ({"interval": "monthly", "monthly_anchor": 0}, "monthly_anchor"),
        ({"interval": "daily", "time_of_day": "24:00"}, "time_of_day"),
        ({"interval": "daily", "time_of_day": "9am"}, "time_of_day"),
        ({"interval": "daily", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"interval": "daily", "minimum_amount": -1}, "minimum_amount"),
    ],
)
async def test_invalid_specs_are_refused(
    temporal_client: Client, spec: dict[str, object], field: str
) -> None:
    seller_id = seller()
    with pytest.raises(WorkflowRequestError) as err:
        await put_payout_schedule(temporal_client, seller_id, **spec)  # type: ignore[arg-type]
    assert err.value.code == "validation_failed"
    assert err.value.details["field"] == field
    with pytest.raises(WorkflowRequestError):  # nothing was created
        await describe_payout_schedule(temporal_client, seller_id)
