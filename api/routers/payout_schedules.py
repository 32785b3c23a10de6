"""``/v1/sellers/{id}/payout_schedule``: the seller's payout schedule, a Temporal Schedule
(``payout-schedule/<seller id>``, ``temporal_calls.schedules``) whose runs pay the seller's
available balance when it reaches the minimum, and record why not otherwise.

Platform keys (admin, operator) put, pause, resume, trigger and delete; a seller key reads its own
schedule only (another seller's is a 404). ``GET`` answers with the spec, the server's next run
times, paused and the note, the amount a run would pay now (and why nothing), and recent runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.routing import ApiRoute
from api.schemas import RequestModel
from api.scoping import AnyRole, MarketplaceDep, PlatformAccess, check_seller_visible
from api.workflow_calls import WorkflowsDep
from marketplace.payout_runs import PayoutRun, list_payout_runs, payout_preview
from temporal_calls import schedules as schedule_calls
from temporal_calls.schedules import PayoutScheduleInfo

router = APIRouter(prefix="/v1/sellers", tags=["payout schedules"], route_class=ApiRoute)

RECENT_RUNS = 20


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


def _out(info: PayoutScheduleInfo) -> PayoutScheduleOut:
    spec = info.spec
    return PayoutScheduleOut(
        seller_id=info.seller_id,
        schedule_id=info.schedule_id,
        interval=spec.interval,
        weekly_anchor=spec.weekly_anchor,
        monthly_anchor=spec.monthly_anchor,
        time_of_day=spec.time_of_day,
        time_zone=spec.time_zone,
        minimum_amount=spec.minimum_amount,
        paused=info.paused,
        note=info.note,
        next_run_times=info.next_run_times,
        runs_started=info.runs,
        runs_skipped_overlapping=info.skipped_overlapping,
    )


@router.put("/{seller_id}/payout_schedule", dependencies=[PlatformAccess])
async def put_payout_schedule(
    seller_id: str,
    body: PayoutScheduleIn,
    conn: DbConnection,
    market: MarketplaceDep,
    workflows: WorkflowsDep,
) -> PayoutScheduleOut:
    """Create or replace the seller's schedule (idempotent; a paused schedule stays paused)."""
    await run_in_threadpool(market.get_seller, conn, seller_id)
    info = await workflows.call(
        lambda client: schedule_calls.put_payout_schedule(
            client,
            seller_id,
            interval=body.interval,
            weekly_anchor=body.weekly_anchor,
            monthly_anchor=body.monthly_anchor,
            time_of_day=body.time_of_day,
            time_zone=body.time_zone,
            minimum_amount=body.minimum_amount,
            task_queue=workflows.task_queue,
        )
    )
    return _out(info)


@router.get("/{seller_id}/payout_schedule", dependencies=[AnyRole])
async def get_payout_schedule(
    seller_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    workflows: WorkflowsDep,
) -> PayoutScheduleOut:
    check_seller_visible(principal, seller_id)
    await run_in_threadpool(market.get_seller, conn, seller_id)
    info = await workflows.call(
        lambda client: schedule_calls.describe_payout_schedule(client, seller_id)
    )
    out = _out(info)
    preview = await run_in_threadpool(
        payout_preview, conn, market, seller_id, info.spec.minimum_amount
    )
    out.payout_now = PayoutNow(
        amount=preview.amount,
        reason=preview.reason,
        available=preview.available,
        currency=preview.currency,
    )
    runs = await run_in_threadpool(list_payout_runs, conn, seller_id, limit=RECENT_RUNS)
    out.recent_runs = [PayoutRunOut.of(r) for r in runs]
    return out


@router.post("/{seller_id}/payout_schedule/pause", dependencies=[PlatformAccess])
async def pause_payout_schedule(
    seller_id: str, body: PauseIn, workflows: WorkflowsDep
) -> PayoutScheduleOut:
    """No automatic runs until resumed; the note says why."""
    await workflows.call(
        lambda client: schedule_calls.pause_payout_schedule(client, seller_id, body.note)
    )
    return _out(
        await workflows.call(
            lambda client: schedule_calls.describe_payout_schedule(client, seller_id)
        )
    )


@router.post("/{seller_id}/payout_schedule/resume", dependencies=[PlatformAccess])
async def resume_payout_schedule(
    seller_id: str, workflows: WorkflowsDep, body: NoteIn | None = None
) -> PayoutScheduleOut:
    note = body.note if body is not None else None
    await workflows.call(
        lambda client: schedule_calls.resume_payout_schedule(client, seller_id, note)
    )
    return _out(
        await workflows.call(
            lambda client: schedule_calls.describe_payout_schedule(client, seller_id)
        )
    )


@router.post("/{seller_id}/payout_schedule/trigger", status_code=202, dependencies=[PlatformAccess])
async def trigger_payout_schedule(seller_id: str, workflows: WorkflowsDep) -> dict[str, str]:
    """Run the schedule now (also when paused or manual); skipped if a run is still going. The
    run's outcome shows in ``GET``'s ``recent_runs`` moments later."""
    await workflows.call(lambda client: schedule_calls.trigger_payout_schedule(client, seller_id))
    return {"status": "triggered", "seller_id": seller_id}


@router.delete("/{seller_id}/payout_schedule", status_code=204, dependencies=[PlatformAccess])
async def delete_payout_schedule(seller_id: str, workflows: WorkflowsDep) -> Response:
    """Remove the schedule; runs and payouts already started go on."""
    await workflows.call(lambda client: schedule_calls.delete_payout_schedule(client, seller_id))
    return Response(status_code=204)
