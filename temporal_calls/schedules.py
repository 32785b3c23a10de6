"""Sellers' payout schedules as Temporal Schedules: one per seller, id
``payout-schedule/<seller id>``, whose action is the payout-run workflow
(``workflows.payout_runs``, started by name) on the payouts task queue.

* ``daily``, ``weekly`` (a weekday), ``monthly`` (a day of month 1-31) at ``time_of_day`` in the
  seller's ``time_zone`` (IANA; the schedule's own ``time_zone_name``, so runs follow daylight
  saving time); ``manual``: a schedule with no calendar at all, so nothing fires by itself and
  ``trigger`` still runs it.
* Monthly with day 29-31 means "that day, or the month's last day when the month is shorter".
  Temporal's calendars cannot say "last day", so the spec lists, per group of months, the day to
  fire on: 31-day months on the anchor, 30-day months on min(anchor, 30), February on the 29th
  (a calendar day that only exists in leap years) and on the 28th in non-leap years only (year
  ranges of step 4 skip the leap years; Temporal's calendars know the years 2000-2100). So the
  server's next run times are exactly the effective days: a run never asks "is it today?".
* Overlapping runs are skipped (``ScheduleOverlapPolicy.SKIP``); after an outage at most a day's
  missed runs catch up (``catchup_window``), so a long outage does not fire a run per missed day.
* A seller on a test clock has a schedule without calendars (nothing fires by wall time; pause,
  resume and trigger mean what they always mean), its spec kept in the action's input
  (``PayoutRunInput``, with the clock's id): the clock's advance computes its firings with
  ``next_firing`` (the same days as the calendars, in the spec's zone) and starts each run with
  ``start_clock_payout_run``.

Errors: ``WorkflowRequestError`` with ``validation_failed`` (bad interval, anchor, time, zone or
minimum) or ``payout_schedule_not_found``. No SQLAlchemy here: the API and the return handling
of the payout workflow's activities call these functions with a Temporal client.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from contracts.common import TASK_QUEUE
from contracts.payout_runs import (
    PAYOUT_RUN_WORKFLOW,
    PayoutRunInput,
    PayoutRunResult,
    PayoutScheduleSpec,
    payout_run_firing_id,
    payout_run_workflow_id,
    payout_schedule_id,
)
from temporal_calls.errors import WorkflowRequestError, unless_not_found
from temporal_calls.search import seller_attributes

__all__ = [
    "INTERVALS",
    "WEEKDAYS",
    "PayoutScheduleInfo",
    "calendars_for",
    "delete_payout_schedule",
    "describe_payout_schedule",
    "next_firing",
    "pause_payout_schedule",
    "put_payout_schedule",
    "resume_payout_schedule",
    "start_clock_payout_run",
    "trigger_payout_schedule",
    "validate_spec",
]

INTERVALS = ("daily", "weekly", "monthly", "manual")
# Temporal's day_of_week: 0 is Sunday.
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
CATCHUP_WINDOW = timedelta(days=1)
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?$")
_MONTHS_31 = (1, 3, 5, 7, 8, 10, 12)
_MONTHS_30 = (4, 6, 9, 11)
# February 28th fires in non-leap years only: the years not divisible by 4 (three ranges of step
# 4) and 2100. Temporal accepts years 2000-2100 only; a spec can be re-put before then.
_NON_LEAP_YEARS = (
    ScheduleRange(2001, 2097, 4),
    ScheduleRange(2002, 2098, 4),
    ScheduleRange(2003, 2099, 4),
    ScheduleRange(2100),
)


@dataclass
class PayoutScheduleInfo:
    """A seller's payout schedule as the server describes it."""

    seller_id: str
    schedule_id: str
    spec: PayoutScheduleSpec
    paused: bool
    note: str | None
    next_run_times: list[datetime]
    """The server's next action times (up to 10; none for manual or paused schedules)."""
    recent_run_times: list[datetime] = field(default_factory=list)
    """When the last (up to 10) runs were scheduled, oldest first."""
    runs: int = 0
    """Runs started so far."""
    skipped_overlapping: int = 0
    """Firings skipped because the previous run was still going."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    test_clock_id: str | None = None
    """The seller's test clock: the schedule fires by its time, when the clock advances."""


def _invalid(message: str, field_name: str) -> WorkflowRequestError:
    return WorkflowRequestError("validation_failed", message, field=field_name)


def _not_found(seller_id: str) -> WorkflowRequestError:
    return WorkflowRequestError(
        "payout_schedule_not_found", f"seller {seller_id!r} has no payout schedule"
    )


def validate_spec(spec: PayoutScheduleSpec) -> PayoutScheduleSpec:
    """The spec normalised (weekday lower case, anchors only where they apply), or
    ``WorkflowRequestError(validation_failed)`` naming the field."""
    interval = spec.interval.lower() if isinstance(spec.interval, str) else spec.interval
    if interval not in INTERVALS:
        raise _invalid(f"interval must be one of {', '.join(INTERVALS)}", "interval")
    if not isinstance(spec.time_of_day, str) or not _TIME.match(spec.time_of_day):
        raise _invalid("time_of_day must be HH:MM (24-hour), optionally :SS", "time_of_day")
    try:
        if not isinstance(spec.time_zone, str) or not spec.time_zone:
            raise ValueError(spec.time_zone)
        ZoneInfo(spec.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid(
            f"time_zone {spec.time_zone!r} is not an IANA time zone", "time_zone"
        ) from exc
    minimum = spec.minimum_amount
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 0 <= minimum < 2**63:
        raise _invalid("minimum_amount must be an integer >= 0 (minor units)", "minimum_amount")
    weekly: str | None = None
    monthly: int | None = None
    if interval == "weekly":
        weekly = spec.weekly_anchor.lower() if isinstance(spec.weekly_anchor, str) else None
        if weekly not in WEEKDAYS:
            raise _invalid("weekly_anchor must be a weekday (monday .. sunday)", "weekly_anchor")
    elif spec.weekly_anchor is not None:
        raise _invalid("weekly_anchor applies to weekly schedules only", "weekly_anchor")
    if interval == "monthly":
        monthly = spec.monthly_anchor
        if isinstance(monthly, bool) or not isinstance(monthly, int) or not 1 <= monthly <= 31:
            raise _invalid("monthly_anchor must be a day of month, 1-31", "monthly_anchor")
    elif spec.monthly_anchor is not None:
        raise _invalid("monthly_anchor applies to monthly schedules only", "monthly_anchor")
    return replace(spec, interval=interval, weekly_anchor=weekly, monthly_anchor=monthly)


def calendars_for(spec: PayoutScheduleSpec) -> list[ScheduleCalendarSpec]:
    """The Temporal calendars of a validated spec (none for manual)."""
    match = _TIME.match(spec.time_of_day)
    assert match is not None
    at = {
        "hour": (ScheduleRange(int(match.group(1))),),
        "minute": (ScheduleRange(int(match.group(2))),),
        "second": (ScheduleRange(int(match.group(3) or 0)),),
    }
    if spec.interval == "daily":
        return [ScheduleCalendarSpec(**at, comment="daily")]
    if spec.interval == "weekly":
        assert spec.weekly_anchor is not None
        day = (ScheduleRange(WEEKDAYS.index(spec.weekly_anchor)),)
        return [ScheduleCalendarSpec(**at, day_of_week=day, comment=f"every {spec.weekly_anchor}")]
    if spec.interval == "monthly":
        anchor = spec.monthly_anchor
        assert anchor is not None
        if anchor <= 28:
            return [
                ScheduleCalendarSpec(
                    **at, day_of_month=(ScheduleRange(anchor),), comment=f"day {anchor}"
                )
            ]
        by_day: dict[int, list[int]] = {}
        for month in (*_MONTHS_31, *_MONTHS_30):
            by_day.setdefault(min(anchor, 31 if month in _MONTHS_31 else 30), []).append(month)
        calendars = [
            ScheduleCalendarSpec(
                **at,
                day_of_month=(ScheduleRange(day),),
                month=tuple(ScheduleRange(m) for m in sorted(months)),
                comment=f"day {anchor}: day {day} of these months",
            )
            for day, months in sorted(by_day.items())
        ]
        calendars.append(
            ScheduleCalendarSpec(
                **at,
                day_of_month=(ScheduleRange(29),),
                month=(ScheduleRange(2),),
                comment=f"day {anchor}: February 29th (leap years)",
            )
        )
        calendars.append(
            ScheduleCalendarSpec(
                **at,
                day_of_month=(ScheduleRange(28),),
                month=(ScheduleRange(2),),
                year=_NON_LEAP_YEARS,
                comment=f"day {anchor}: February 28th (other years)",
            )
        )
        return calendars
    return []  # manual


def _schedule(
    seller_id: str,
    spec: PayoutScheduleSpec,
    *,
    task_queue: str,
    state: ScheduleState,
    starts_at: datetime | None,
    test_clock_id: str | None = None,
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PAYOUT_RUN_WORKFLOW,
            PayoutRunInput(seller_id=seller_id, spec=spec, test_clock_id=test_clock_id),
            id=payout_run_workflow_id(seller_id),
            task_queue=task_queue,
            execution_timeout=timedelta(hours=1),
            typed_search_attributes=seller_attributes(seller_id),
            static_summary=f"Payout run of seller {seller_id}",
        ),
        spec=ScheduleSpec(
            # On a test clock nothing fires by wall time: the clock's advance runs it.
            calendars=calendars_for(spec) if test_clock_id is None else [],
            time_zone_name=spec.time_zone,
            start_at=starts_at,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=state,
    )


async def put_payout_schedule(
    client: Client,
    seller_id: str,
    *,
    interval: str,
    weekly_anchor: str | None = None,
    monthly_anchor: int | None = None,
    time_of_day: str = "09:00",
    time_zone: str = "UTC",
    minimum_amount: int = 0,
    starts_at: datetime | None = None,
    task_queue: str = TASK_QUEUE,
    test_clock_id: str | None = None,
) -> PayoutScheduleInfo:
    """Create the seller's schedule or replace its spec (idempotent). An existing schedule keeps
    its paused state and note. ``starts_at``: no run before this instant (an onboarding date;
    tests use it to look at the runs of a given month). ``test_clock_id``: the seller's test
    clock, whose advance runs the schedule (module docstring)."""
    spec = validate_spec(
        PayoutScheduleSpec(
            interval=interval,
            time_of_day=time_of_day,
            time_zone=time_zone,
            weekly_anchor=weekly_anchor,
            monthly_anchor=monthly_anchor,
            minimum_amount=minimum_amount,
        )
    )
    schedule_id = payout_schedule_id(seller_id)
    try:
        await client.create_schedule(
            schedule_id,
            _schedule(
                seller_id,
                spec,
                task_queue=task_queue,
                state=ScheduleState(),
                starts_at=starts_at,
                test_clock_id=test_clock_id,
            ),
            search_attributes=seller_attributes(seller_id),
        )
    except ScheduleAlreadyRunningError:

        def updated(current: ScheduleUpdateInput) -> ScheduleUpdate:
            old = current.description.schedule.state
            return ScheduleUpdate(
                schedule=_schedule(
                    seller_id,
                    spec,
                    task_queue=task_queue,
                    state=ScheduleState(paused=old.paused, note=old.note),
                    starts_at=starts_at,
                    test_clock_id=test_clock_id,
                )
            )

        await client.get_schedule_handle(schedule_id).update(updated)
    return await describe_payout_schedule(client, seller_id)


async def describe_payout_schedule(client: Client, seller_id: str) -> PayoutScheduleInfo:
    """The schedule in the platform's terms, with the server's next run times."""
    handle = client.get_schedule_handle(payout_schedule_id(seller_id))
    desc = await unless_not_found(handle.describe(), _not_found(seller_id))
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    (run_input,) = await client.data_converter.decode(list(action.args), [PayoutRunInput])
    assert isinstance(run_input, PayoutRunInput)
    state = desc.schedule.state
    return PayoutScheduleInfo(
        seller_id=seller_id,
        schedule_id=handle.id,
        spec=run_input.spec,
        paused=state.paused,
        note=state.note or None,
        next_run_times=[] if state.paused else list(desc.info.next_action_times),
        recent_run_times=[r.scheduled_at for r in desc.info.recent_actions],
        runs=desc.info.num_actions,
        skipped_overlapping=desc.info.num_actions_skipped_overlap,
        created_at=desc.info.created_at,
        updated_at=desc.info.last_updated_at,
        test_clock_id=run_input.test_clock_id,
    )


async def _call(client: Client, seller_id: str, op: str, note: str | None = None) -> None:
    handle = client.get_schedule_handle(payout_schedule_id(seller_id))
    if op == "pause":
        call = handle.pause(note=note)
    elif op == "resume":
        call = handle.unpause(note=note)
    elif op == "trigger":
        call = handle.trigger()
    else:
        call = handle.delete()
    await unless_not_found(call, _not_found(seller_id))


async def pause_payout_schedule(client: Client, seller_id: str, note: str) -> None:
    """Stop the automatic runs until resumed; ``note`` says why (shown by describe). Pausing a
    paused schedule replaces the note."""
    await _call(client, seller_id, "pause", note or "paused")


async def resume_payout_schedule(client: Client, seller_id: str, note: str | None = None) -> None:
    await _call(client, seller_id, "resume", note or "resumed")


async def trigger_payout_schedule(client: Client, seller_id: str) -> None:
    """Run now (also when paused or manual). Skipped if a run is still going (overlap policy)."""
    await _call(client, seller_id, "trigger")


async def delete_payout_schedule(client: Client, seller_id: str) -> None:
    """Remove the schedule; runs and payouts already started go on."""
    await _call(client, seller_id, "delete")


def next_firing(spec: PayoutScheduleSpec, after: datetime) -> datetime | None:
    """The first time a validated ``spec`` fires strictly after ``after`` (UTC), as its
    calendars would: daily, on the weekday, or on the day of month (the month's last day when it
    is shorter) at ``time_of_day`` in ``time_zone``. None for manual. Pure: a test clock's
    advance computes its sellers' firings with it."""
    if spec.interval not in ("daily", "weekly", "monthly"):
        return None
    match = _TIME.match(spec.time_of_day)
    assert match is not None
    zone = ZoneInfo(spec.time_zone)
    clock = time(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    day = after.astimezone(zone).date()
    for _ in range(400):  # a monthly firing comes within 31 days; a margin for odd zones
        if _fires_on(spec, day):
            candidate = datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)
            if candidate > after:
                return candidate
        day += timedelta(days=1)
    return None  # pragma: no cover (every interval fires within a year)


def _fires_on(spec: PayoutScheduleSpec, day: date) -> bool:
    if spec.interval == "daily":
        return True
    if spec.interval == "weekly":
        # WEEKDAYS starts on Sunday; date.weekday() on Monday.
        return spec.weekly_anchor == WEEKDAYS[(day.weekday() + 1) % 7]
    anchor = spec.monthly_anchor
    assert anchor is not None
    return day.day == min(anchor, calendar.monthrange(day.year, day.month)[1])


async def start_clock_payout_run(
    client: Client,
    seller_id: str,
    spec: PayoutScheduleSpec,
    *,
    test_clock_id: str,
    scheduled_at: datetime,
    task_queue: str = TASK_QUEUE,
) -> PayoutRunResult:
    """Run the firing at ``scheduled_at`` (a test clock's time) of a clocked seller's schedule:
    the schedule's own workflow, named as the server names a firing's run, with the firing's
    time; returns the run's decision. Idempotent: the decision is keyed by the run id."""
    handle = await client.start_workflow(
        PAYOUT_RUN_WORKFLOW,
        PayoutRunInput(
            seller_id=seller_id, spec=spec, test_clock_id=test_clock_id, scheduled_at=scheduled_at
        ),
        id=payout_run_firing_id(seller_id, scheduled_at),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        execution_timeout=timedelta(hours=1),
        search_attributes=seller_attributes(seller_id),
        static_summary=f"Payout run of seller {seller_id} (test clock {test_clock_id})",
        result_type=PayoutRunResult,
    )
    result: PayoutRunResult = await handle.result()
    return result
