"""Payout schedules and the payout-run workflow (what one firing of a seller's schedule does):
names, ids, the schedule's spec and the run activity's input and result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.common import SearchAttributeKey

from contracts.payouts import ReservePayoutResult

PAYOUT_RUN_WORKFLOW = "PayoutRunWorkflow"
DECIDE_PAYOUT_RUN = "decide_payout_run"
# Set by the server on every workflow a schedule starts (the firing's nominal time; for a
# trigger, the time of the trigger).
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def payout_schedule_id(seller_id: str) -> str:
    return f"payout-schedule/{seller_id}"


def payout_run_workflow_id(seller_id: str) -> str:
    """The id prefix of the runs (the server appends each firing's time)."""
    return f"payout-run/{seller_id}"


def payout_run_id(seller_id: str, scheduled_at: datetime) -> str:
    return f"{seller_id}:{scheduled_at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


@dataclass
class PayoutScheduleSpec:
    """A seller's payout schedule in the platform's terms (``temporal_calls.schedules`` turns it
    into a Temporal schedule spec)."""

    interval: str
    """daily | weekly | monthly | manual (no automatic runs; triggers still run)"""
    time_of_day: str = "09:00"
    """``HH:MM`` (or ``HH:MM:SS``) in ``time_zone``."""
    time_zone: str = "UTC"
    """IANA name; the runs follow its daylight-saving changes."""
    weekly_anchor: str | None = None
    """weekly: monday .. sunday."""
    monthly_anchor: int | None = None
    """monthly: 1-31; the month's last day when it is shorter (31 -> 30 April, 28/29 February)."""
    minimum_amount: int = 0
    """Minor units; a run pays only when the available balance is at least this (and >= 1)."""


@dataclass
class PayoutRunInput:
    """The schedule's action argument: fixed when the schedule is created or updated."""

    seller_id: str
    spec: PayoutScheduleSpec
    test_clock_id: str | None = None
    """The seller's test clock: the schedule fires by its time (the clock's advance starts the
    runs), never by wall time."""
    scheduled_at: datetime | None = None
    """A run a test clock's advance starts: the firing's time on the clock (a schedule's own
    runs take the server's scheduled time)."""


def payout_run_firing_id(seller_id: str, scheduled_at: datetime) -> str:
    """The workflow id of the run of one firing, as the server names a schedule's runs (the
    prefix, then the firing's time): a test clock's runs are named the same way."""
    at = scheduled_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{payout_run_workflow_id(seller_id)}-{at}"


@dataclass
class DecidePayoutRunInput:
    run_id: str
    """``<seller id>:<scheduled time, ISO 8601 UTC>``: one decision per firing."""
    seller_id: str
    scheduled_at: datetime
    minimum_amount: int
    """Pay only when the available balance is at least this (minor units; at least 1 anyway)."""


@dataclass
class PayoutRunResult:
    """What the run decided (``payout_runs`` row): ``started`` with a payout id and amount, or
    ``skipped`` with a reason (``no_payout_account``, ``below_minimum``, ``nothing_available``,
    ``negative_balance``)."""

    run_id: str
    seller_id: str
    scheduled_at: datetime
    outcome: str
    payout_id: str | None = None
    amount: int | None = None
    reason: str | None = None
    available: int | None = None
    """The seller's available balance when the run decided (not stored; for the workflow's
    summary)."""
    reserved: ReservePayoutResult | None = None
    """``started``: the payout as the decision reserved it, handed to the payout workflow so it
    does not reserve again."""
