"""``/v1/sellers/{id}/payout_schedule``: the seller's payout schedule, a Temporal Schedule
(``payout-schedule/<seller id>``, ``temporal_calls.schedules``) whose runs pay the seller's
available balance when it reaches the minimum, and record why not otherwise.

Platform keys (admin, operator) put, pause, resume, trigger and delete; a seller key reads its own
schedule only (another seller's is a 404). ``GET`` answers with the spec, the server's next run
times, paused and the note, the amount a run would pay now (and why nothing), and recent runs.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.routing import ApiRoute
from api.schemas.payout_schedules import (
    NoteIn,
    PauseIn,
    PayoutNow,
    PayoutRunOut,
    PayoutScheduleIn,
    PayoutScheduleOut,
)
from api.scoping import AnyRole, MarketplaceDep, PlatformAccess, check_seller_visible
from api.workflow_calls import Workflows, WorkflowsDep
from marketplace.payout_runs import list_payout_runs, payout_preview
from temporal_calls import schedules as schedule_calls

router = APIRouter(prefix="/v1/sellers", tags=["payout schedules"], route_class=ApiRoute)

RECENT_RUNS = 20


async def _described(workflows: Workflows, seller_id: str) -> PayoutScheduleOut:
    info = await workflows.call(
        lambda client: schedule_calls.describe_payout_schedule(client, seller_id)
    )
    return PayoutScheduleOut.model_validate(info)


@router.put("/{seller_id}/payout_schedule", dependencies=[PlatformAccess])
async def put_payout_schedule(
    seller_id: str,
    body: PayoutScheduleIn,
    conn: DbConnection,
    market: MarketplaceDep,
    workflows: WorkflowsDep,
) -> PayoutScheduleOut:
    """Create or replace the seller's schedule (idempotent; a paused schedule stays paused). A
    seller on a test clock: the schedule fires by the clock's time, as the clock advances."""
    seller = await run_in_threadpool(market.get_seller, conn, seller_id)
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
            test_clock_id=seller.test_clock_id,
        )
    )
    return PayoutScheduleOut.model_validate(info)


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
    out = await _described(workflows, seller_id)
    preview = await run_in_threadpool(payout_preview, conn, market, seller_id, out.minimum_amount)
    out.payout_now = PayoutNow.model_validate(preview)
    runs = await run_in_threadpool(list_payout_runs, conn, seller_id, limit=RECENT_RUNS)
    out.recent_runs = [PayoutRunOut.model_validate(r) for r in runs]
    return out


@router.post("/{seller_id}/payout_schedule/pause", dependencies=[PlatformAccess])
async def pause_payout_schedule(
    seller_id: str, body: PauseIn, workflows: WorkflowsDep
) -> PayoutScheduleOut:
    """No automatic runs until resumed; the note says why."""
    await workflows.call(
        lambda client: schedule_calls.pause_payout_schedule(client, seller_id, body.note)
    )
    return await _described(workflows, seller_id)


@router.post("/{seller_id}/payout_schedule/resume", dependencies=[PlatformAccess])
async def resume_payout_schedule(
    seller_id: str, workflows: WorkflowsDep, body: NoteIn | None = None
) -> PayoutScheduleOut:
    note = body.note if body is not None else None
    await workflows.call(
        lambda client: schedule_calls.resume_payout_schedule(client, seller_id, note)
    )
    return await _described(workflows, seller_id)


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
