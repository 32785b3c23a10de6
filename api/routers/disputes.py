"""``/v1/disputes``: chargebacks. Opening one writes a pending debit on the seller (available
drops, posted does not) in the request's own transaction and starts the dispute workflow
(``dispute/<id>``), which keeps the deadline; ``resolve`` with won (the debit is archived) or lost
(it is posted) is written by its request too and signalled to the workflow; unresolved by the
deadline, the dispute is lost.

Platform keys open and resolve disputes; a seller key reads its own seller's disputes only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.modes import KeyMode
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas.common import ListResponse, SellerId
from api.schemas.disputes import DisputeCreate, DisputeOut, DisputeResolution
from api.scoping import (
    AnyRole,
    MarketplaceDep,
    PlatformAccess,
    check_visible,
    is_seller_key,
)
from api.workflow_calls import WorkflowsDep
from ledger_core.ids import uuid7
from marketplace import (
    Dispute,
    DisputeConflict,
    DisputeNotFound,
    DisputeStatus,
    Marketplace,
    Page,
    dispute_not_found,
)
from temporal_calls import disputes as dispute_calls

router = APIRouter(prefix="/v1/disputes", tags=["disputes"], route_class=ApiRoute)

# Card networks give merchants a few weeks to respond to a chargeback.
DEFAULT_RESPONSE_WINDOW = timedelta(days=14)


def _existing_dispute(
    conn: Connection, market: Marketplace, dispute_id: str, body: DisputeCreate, livemode: bool
) -> Dispute | None:
    """The dispute if it was opened before with these terms (None if new); raises
    SellerNotFound or DisputeConflict. The order need not have an earning of the seller (an
    order from before the platform booked earnings)."""
    market.get_seller(conn, body.seller_id, livemode=livemode)
    try:
        dispute = market.get_dispute(conn, dispute_id)
    except DisputeNotFound:
        return None
    if (dispute.seller_id, dispute.order_id, dispute.amount) != (
        body.seller_id,
        body.order_id,
        body.amount,
    ):
        raise DisputeConflict(
            f"dispute {dispute_id!r} exists with other terms (seller {dispute.seller_id}, "
            f"order {dispute.order_id}, amount {dispute.amount})",
            dispute_id=dispute_id,
        )
    return dispute


@router.post(
    "",
    status_code=201,
    dependencies=[PlatformAccess],
    responses={200: {"model": DisputeOut, "description": "The dispute was opened before."}},
)
async def open_dispute(
    body: DisputeCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    temporal: WorkflowsDep,
    response: Response,
    livemode: KeyMode,
) -> DisputeOut:
    """Open a chargeback on a seller's order: the disputed amount leaves the seller's available
    balance at once (a pending debit), and the dispute workflow waits for the outcome."""
    dispute_id = body.id or f"dp_{uuid7().hex}"
    # A seller on a test clock: the deadline is in the clock's time.
    clock = await run_in_threadpool(market.seller_clock, conn, body.seller_id)
    now = clock[1] if clock is not None else datetime.now(UTC)
    deadline = body.deadline or body.respond_by or now + DEFAULT_RESPONSE_WINDOW
    response.headers["Location"] = f"/v1/disputes/{dispute_id}"
    existing = await run_in_threadpool(_existing_dispute, conn, market, dispute_id, body, livemode)
    if existing is not None:
        response.status_code = 200
        return DisputeOut.model_validate(existing)
    if deadline <= now:
        raise Problem(422, "validation_failed", "deadline must be in the future", field="deadline")
    # The workflow (the deadline's timer) first: started, not waited for; then the pending debit
    # in this request's transaction, so the seller's money is locked only while it is written.
    # If the commit does not happen, the workflow opens the dispute itself (its activity is
    # keyed by the dispute id) and the client's retry finds it.
    await temporal.call(
        lambda client: dispute_calls.start_dispute(
            client,
            dispute_id,
            body.seller_id,
            body.order_id,
            body.amount,
            deadline,
            body.reason,
            dict(body.metadata),
            task_queue=temporal.task_queue,
            test_clock_id=clock[0] if clock is not None else None,
        )
    )
    dispute = await run_in_threadpool(
        lambda: market.open_dispute(
            conn,
            dispute_id=dispute_id,
            seller_id=body.seller_id,
            order_id=body.order_id,
            amount=body.amount,
            deadline=deadline,
            reason=body.reason,
            metadata=dict(body.metadata),
        )
    )
    return DisputeOut.model_validate(dispute)


@router.get("", dependencies=[AnyRole])
def list_disputes(
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    livemode: KeyMode,
    seller_id: SellerId | None = None,
    status: Literal["open", "won", "lost"] | None = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[DisputeOut]:
    """Disputes by id, optionally of one seller or status. A seller key sees its own only."""
    after = decode_key_cursor("disputes", after_cursor)
    if is_seller_key(principal) and seller_id not in (None, principal.seller_id):
        page: Page[Dispute] = Page(items=[], next_after=None)
    else:
        page = market.list_disputes(
            conn,
            seller_id=principal.seller_id if is_seller_key(principal) else seller_id,
            status=DisputeStatus(status) if status else None,
            livemode=livemode,
            after=after,
            limit=per_page,
        )
    return paginate(response, "disputes", page, per_page, DisputeOut)


@router.get("/{dispute_id}", dependencies=[AnyRole])
def get_dispute(
    dispute_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> DisputeOut:
    dispute = market.get_dispute(conn, dispute_id)
    check_visible(principal, dispute.seller_id, dispute_not_found(dispute_id))
    return DisputeOut.model_validate(dispute)


@router.post("/{dispute_id}/resolve", dependencies=[PlatformAccess])
async def resolve_dispute(
    dispute_id: str,
    body: DisputeResolution,
    conn: DbConnection,
    market: MarketplaceDep,
    temporal: WorkflowsDep,
) -> DisputeOut:
    """Won: the pending debit is archived (available comes back). Lost: it is posted (posted
    drops). The same outcome again returns the dispute; the other is a 409
    ``dispute_already_resolved``. Written in this request's transaction, after the dispute's
    workflow was told (a signal: it stops waiting for the deadline and records the outcome)."""
    await run_in_threadpool(market.get_dispute, conn, dispute_id)
    await temporal.call(
        lambda client: dispute_calls.tell_dispute_outcome(client, dispute_id, body.outcome)
    )
    dispute = await run_in_threadpool(market.resolve_dispute, conn, dispute_id, body.outcome)
    return DisputeOut.model_validate(dispute)
