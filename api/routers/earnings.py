"""``/v1/sellers/{seller_id}/earnings`` and ``/v1/sellers/{seller_id}/holds``: an order's earning,
booked and held by the seller's hold workflow (``seller-holds/<seller id>``), and what operators
do with a hold (release it now, extend it, cancel it).

Booking is idempotent by order id at every level: the database (``earning:<order id>``), the
workflow (update id ``earning:<order id>``) and, with an ``Idempotency-Key``, the HTTP response.
An order already booked with the same terms answers 200 with the earning as it is now, without a
round trip to Temporal; with other terms, 409 ``earning_conflict``.

The endpoints that talk to Temporal are ``async``; their database reads (existence and scope
checks, in the request's transaction) run in the thread pool.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.marketplace_schemas import (
    EarningCreate,
    EarningOut,
    HoldExtension,
    HoldOut,
    HoldsOut,
)
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate_keyed
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas import ListResponse
from api.scoping import (
    AnyRole,
    MarketplaceDep,
    PlatformAccess,
    check_seller_visible,
    earning_not_found,
)
from api.workflow_calls import WorkflowsDep
from marketplace import (
    Earning,
    EarningConflict,
    EarningNotFound,
    EarningStatus,
    Marketplace,
)
from workflows import client as workflows
from workflows.types import seller_holds_workflow_id

router = APIRouter(
    prefix="/v1/sellers/{seller_id}", tags=["earnings and holds"], route_class=ApiRoute
)


def _booked_earning(
    conn: Connection, market: Marketplace, seller_id: str, body: EarningCreate
) -> Earning | None:
    """The order's earning if it is booked already with these terms (None if not booked yet);
    raises SellerNotFound or EarningConflict."""
    market.get_seller(conn, seller_id)
    try:
        earning = market.get_earning(conn, body.order_id)
    except EarningNotFound:
        return None
    if (earning.seller_id, earning.amount, earning.fee) != (seller_id, body.amount, body.fee):
        raise EarningConflict(
            f"order {body.order_id!r} was booked before with other terms (seller "
            f"{earning.seller_id}, amount {earning.amount}, fee {earning.fee})",
            order_id=body.order_id,
        )
    return earning


@router.post(
    "/earnings",
    status_code=201,
    dependencies=[PlatformAccess],
    responses={200: {"model": EarningOut, "description": "The order was booked before."}},
)
async def create_earning(
    seller_id: str,
    body: EarningCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    temporal: WorkflowsDep,
    response: Response,
) -> EarningOut:
    """Book an order's earning: a pending ledger transaction (clearing -> seller for
    amount - fee, clearing -> fees revenue for the fee) held by the seller's hold workflow until
    ``hold_until`` (now + the seller's hold period), then posted."""
    # Ids are free text: percent-encoded, since a header must be Latin-1 (and a URL, ASCII).
    response.headers["Location"] = (
        f"/v1/sellers/{quote(seller_id, safe='')}/earnings/{quote(body.order_id, safe='')}"
    )
    booked = await run_in_threadpool(_booked_earning, conn, market, seller_id, body)
    if booked is not None:
        response.status_code = 200
        return EarningOut.of(booked)
    earning = await temporal.call(
        lambda client: workflows.add_earning(
            client,
            seller_id,
            body.order_id,
            body.amount,
            body.fee,
            dict(body.metadata),
            task_queue=temporal.task_queue,
        )
    )
    return EarningOut.of(earning)


@router.get("/earnings", dependencies=[AnyRole])
def list_earnings(
    seller_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    status: Literal["on_hold", "posted", "cancelled", "refunded"] | None = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[EarningOut]:
    """The seller's earnings by order id, optionally of one status."""
    check_seller_visible(principal, seller_id)
    page = market.list_earnings(
        conn,
        seller_id,
        status=EarningStatus(status) if status else None,
        after=decode_key_cursor("earnings", after_cursor),
        limit=per_page,
    )
    return paginate_keyed(response, "earnings", page, per_page, EarningOut.of)


def _seller_earning(
    conn: Connection, market: Marketplace, seller_id: str, order_id: str
) -> Earning:
    market.get_seller(conn, seller_id)
    try:
        earning = market.get_earning(conn, order_id)
    except EarningNotFound:
        raise earning_not_found(order_id) from None
    if earning.seller_id != seller_id:
        raise earning_not_found(order_id)
    return earning


@router.get("/earnings/{order_id}", dependencies=[AnyRole])
def get_earning(
    seller_id: str,
    order_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
) -> EarningOut:
    check_seller_visible(principal, seller_id)
    return EarningOut.of(_seller_earning(conn, market, seller_id, order_id))


@router.get("/holds", dependencies=[AnyRole])
async def list_holds(
    seller_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    temporal: WorkflowsDep,
) -> HoldsOut:
    """What the seller's hold workflow keeps (its ``holds`` query), the soonest end first:
    earnings on hold (``kind: earning``, ending at ``hold_until``) and, for a seller with a
    rolling reserve, reserves held after posting (``kind: reserve``, ending at
    ``reserve_release_at``)."""
    check_seller_visible(principal, seller_id)
    await run_in_threadpool(market.get_seller, conn, seller_id)
    holds = await temporal.call(lambda client: workflows.get_holds(client, seller_id))
    return HoldsOut(
        seller_id=seller_id,
        workflow_id=seller_holds_workflow_id(seller_id),
        items=[HoldOut.of(h) for h in holds],
    )


def _hold_to_steer(conn: Connection, market: Marketplace, seller_id: str, order_id: str) -> None:
    """404 for an unknown seller or an order that is not the seller's; 409 for an earning whose
    hold has ended. The workflow's validators check again (they are the authority)."""
    try:
        earning = _seller_earning(conn, market, seller_id, order_id)
    except EarningNotFound:
        raise Problem(
            404, "hold_not_found", f"seller {seller_id!r} has no hold for order {order_id!r}"
        ) from None
    if earning.status != EarningStatus.ON_HOLD:
        raise Problem(
            409,
            "invalid_hold_state",
            f"the hold of order {order_id!r} has already ended (the earning is {earning.status})",
            earning_status=str(earning.status),
        )


@router.post("/holds/{order_id}/release", dependencies=[PlatformAccess])
async def release_hold(
    seller_id: str,
    order_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    temporal: WorkflowsDep,
) -> EarningOut:
    """End the hold now: the earning posts (and its rolling reserve, if any, is held back)."""
    await run_in_threadpool(_hold_to_steer, conn, market, seller_id, order_id)
    earning = await temporal.call(
        lambda client: workflows.release_hold(client, seller_id, order_id)
    )
    return EarningOut.of(earning)


@router.post("/holds/{order_id}/extend", dependencies=[PlatformAccess])
async def extend_hold(
    seller_id: str,
    order_id: str,
    body: HoldExtension,
    conn: DbConnection,
    market: MarketplaceDep,
    temporal: WorkflowsDep,
) -> EarningOut:
    """Move the hold's end to ``hold_until``, which must be later than the current end (422
    ``validation_failed`` otherwise)."""
    await run_in_threadpool(_hold_to_steer, conn, market, seller_id, order_id)
    earning = await temporal.call(
        lambda client: workflows.extend_hold(client, seller_id, order_id, body.hold_until)
    )
    return EarningOut.of(earning)


@router.post("/holds/{order_id}/cancel", dependencies=[PlatformAccess])
async def cancel_hold(
    seller_id: str,
    order_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    temporal: WorkflowsDep,
) -> EarningOut:
    """Refund during the hold: the pending earning is archived (it counts nowhere) and the hold
    is dropped."""
    await run_in_threadpool(_hold_to_steer, conn, market, seller_id, order_id)
    earning = await temporal.call(lambda client: workflows.cancel_hold(client, seller_id, order_id))
    return EarningOut.of(earning)
