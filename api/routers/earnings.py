"""``/v1/sellers/{seller_id}/earnings`` and ``/v1/sellers/{seller_id}/holds``: an order's earning,
booked in the request's own database transaction (``marketplace.booking``), and what operators do
with a hold (release it now, extend it, cancel it) through the seller's hold workflow
(``seller-holds/<seller id>``), which keeps the time.

Booking waits for nothing but PostgreSQL: the pending ledger transaction, the earning with its
``hold_until``, its event and the hold clock are written with the commit, in one message, before
the 201. The hold workflow hears of it only if it must look earlier than it would (the worker's
dispatcher signals it). Idempotent by seller and order at every level: the database (the
earnings key, the ledger's ``earning:<seller>/<order>``) and, with an ``Idempotency-Key``, the
HTTP response. An order already booked for the seller with the same terms answers 200 with the
earning as it is now; with other terms, 409 ``earning_conflict``.

The steering endpoints are ``async`` (they await Temporal); their database checks run in the
thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.auth import CurrentPrincipal
from api.booking import BookingBatcher
from api.dependencies import DbConnection
from api.modes import KeyMode
from api.pagination import (
    AfterCursor,
    PerPage,
    decode_key_cursor,
    paginate,
)
from api.problems import Problem
from api.routing import ApiRoute, commits_in_one_message, connection_only_with_idempotency_key
from api.schemas.common import ListResponse
from api.schemas.earnings import (
    EarningCreate,
    EarningOut,
    HoldExtension,
    HoldOut,
    HoldsOut,
)
from api.scoping import (
    AnyRole,
    MarketplaceDep,
    PlatformAccess,
    check_seller_visible,
)
from api.workflow_calls import WorkflowsDep
from contracts.holds import seller_holds_workflow_id
from marketplace import (
    Earning,
    EarningNotFound,
    EarningRequest,
    EarningStatus,
    Marketplace,
    earning_not_found,
)
from temporal_calls import holds as hold_calls

router = APIRouter(
    prefix="/v1/sellers/{seller_id}", tags=["earnings and holds"], route_class=ApiRoute
)


async def get_bookings(request: Request) -> BookingBatcher:
    bookings = request.app.state.bookings
    assert isinstance(bookings, BookingBatcher)
    return bookings


BookingsDep = Annotated[BookingBatcher, Depends(get_bookings)]


@router.post(
    "/earnings",
    status_code=201,
    dependencies=[PlatformAccess],
    responses={200: {"model": EarningOut, "description": "The order was booked before."}},
)
@commits_in_one_message
@connection_only_with_idempotency_key
async def create_earning(
    seller_id: str,
    body: EarningCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    bookings: BookingsDep,
    response: Response,
    livemode: KeyMode,
) -> EarningOut:
    """Book an order's earning: a pending ledger transaction (clearing -> seller for
    amount - fee, clearing -> fees revenue for the fee), on hold until ``hold_until`` (now + the
    seller's hold period), when the seller's hold workflow posts it. Committed before the answer
    (group commit with the bookings in flight at the same moment: ``api.booking``)."""
    # Ids are free text: percent-encoded, since a header must be Latin-1 (and a URL, ASCII).
    response.headers["Location"] = (
        f"/v1/sellers/{quote(seller_id, safe='')}/earnings/{quote(body.order_id, safe='')}"
    )
    # The seller's mode was checked against the key's (api.modes); the booking checks it again
    # in the read it makes anyway.
    request = EarningRequest(
        seller_id,
        body.order_id,
        body.amount,
        body.fee,
        dict(body.metadata),
        livemode=livemode,
    )
    if conn is None:  # no Idempotency-Key: booked with the other requests of the moment
        outcome = await bookings.book(request)
    else:  # its key's record commits with it, in a transaction of its own
        [outcome] = await run_in_threadpool(market.book_earnings, conn, [request], at_commit=True)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.earning is not None
    if not outcome.created:
        response.status_code = 200
    return EarningOut.model_validate(outcome.earning)


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
    return paginate(response, "earnings", page, per_page, EarningOut)


def _seller_earning(
    conn: Connection, market: Marketplace, seller_id: str, order_id: str
) -> Earning:
    try:
        return market.get_earning(conn, seller_id, order_id)
    except EarningNotFound:
        market.get_seller(conn, seller_id)  # an unknown seller is seller_not_found
        raise earning_not_found(order_id) from None


@router.get("/earnings/{order_id}", dependencies=[AnyRole])
def get_earning(
    seller_id: str,
    order_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
) -> EarningOut:
    check_seller_visible(principal, seller_id)
    return EarningOut.model_validate(_seller_earning(conn, market, seller_id, order_id))


@router.get("/holds", dependencies=[AnyRole])
def list_holds(
    seller_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> HoldsOut:
    """The seller's holds, the soonest end first, from the database: earnings on hold
    (``kind: earning``, ending at ``hold_until``) and, for a seller with a rolling reserve,
    reserves held after posting (``kind: reserve``, ending at ``reserve_release_at``)."""
    check_seller_visible(principal, seller_id)
    after = decode_key_cursor("holds", after_cursor)
    try:
        key = json.loads(after) if after is not None else None
        position = (datetime.fromisoformat(key[0]), str(key[1]), str(key[2])) if key else None
    except (ValueError, TypeError, IndexError, KeyError):
        raise Problem(422, "invalid_cursor", "after_cursor is not a cursor of this list.") from None
    page = market.list_holds(conn, seller_id, after=position, limit=per_page)
    listed = paginate(response, "holds", page, per_page, HoldOut)
    return HoldsOut(
        seller_id=seller_id,
        workflow_id=seller_holds_workflow_id(seller_id),
        items=listed.items,
        next_cursor=listed.next_cursor,
    )


def _hold_to_steer(
    conn: Connection,
    market: Marketplace,
    seller_id: str,
    order_id: str,
    *,
    later_than_now: datetime | None = None,
) -> None:
    """404 for an unknown seller or an order that is not the seller's; 409 for an earning whose
    hold has ended; 422 for a new end that is not later (``later_than_now``). The workflow's
    activity checks again under the earning's row lock (it is the authority)."""
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
    if later_than_now is not None and later_than_now <= earning.hold_until:
        raise Problem(
            422,
            "validation_failed",
            f"the new hold end {later_than_now.isoformat()} must be later than the current one, "
            f"{earning.hold_until.isoformat()}",
        )


class HoldToSteer:
    """What the steering endpoints share (a dependency): the hold, by the seller and order of the
    path, and the services to check and steer it with. The request's connection stays an
    endpoint parameter (``ApiRoute`` opens it in the endpoint's thread)."""

    def __init__(
        self, seller_id: str, order_id: str, market: MarketplaceDep, temporal: WorkflowsDep
    ) -> None:
        self.seller_id, self.order_id = seller_id, order_id
        self.market, self.temporal = market, temporal

    async def steer(
        self,
        conn: Connection,
        request: Callable[[Client], Awaitable[object]],
        *,
        later_than_now: datetime | None = None,
    ) -> EarningOut:
        """Check the hold (``_hold_to_steer``), then ask its workflow; the earning it answers."""
        await run_in_threadpool(
            lambda: _hold_to_steer(
                conn, self.market, self.seller_id, self.order_id, later_than_now=later_than_now
            )
        )
        return EarningOut.model_validate(await self.temporal.call(request))


HoldDep = Annotated[HoldToSteer, Depends()]


@router.post("/holds/{order_id}/release", dependencies=[PlatformAccess])
async def release_hold(hold: HoldDep, conn: DbConnection) -> EarningOut:
    """End the hold now: the earning posts (and its rolling reserve, if any, is held back)."""
    return await hold.steer(
        conn, lambda client: hold_calls.release_hold(client, hold.seller_id, hold.order_id)
    )


@router.post("/holds/{order_id}/extend", dependencies=[PlatformAccess])
async def extend_hold(hold: HoldDep, body: HoldExtension, conn: DbConnection) -> EarningOut:
    """Move the hold's end to ``hold_until``, which must be later than the current end (422
    ``validation_failed`` otherwise)."""
    return await hold.steer(
        conn,
        lambda client: hold_calls.extend_hold(
            client, hold.seller_id, hold.order_id, body.hold_until
        ),
        later_than_now=body.hold_until,
    )


@router.post("/holds/{order_id}/cancel", dependencies=[PlatformAccess])
async def cancel_hold(hold: HoldDep, conn: DbConnection) -> EarningOut:
    """Refund during the hold: the pending earning is archived (it counts nowhere) and the hold
    is dropped."""
    return await hold.steer(
        conn, lambda client: hold_calls.cancel_hold(client, hold.seller_id, hold.order_id)
    )
