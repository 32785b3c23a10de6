"""``/v1/sellers``: the marketplace's sellers, their terms (hold period, rolling reserve) and their
balances. Database only (plain ``def`` endpoints, run in the thread pool); earnings and holds,
which go through the seller's hold workflow, are in ``api.routers.earnings``.

Platform keys (admin, operator) create, change and read every seller; a seller key reads only its
own seller (another seller is a 404, as if it did not exist).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.modes import KeyMode
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate
from api.routing import ApiRoute
from api.schemas.common import ListResponse
from api.schemas.sellers import SellerBalancesOut, SellerCreate, SellerOut, SellerUpdate
from api.scoping import (
    AnyRole,
    MarketplaceDep,
    PayoutsDep,
    PlatformAccess,
    check_seller_visible,
    is_seller_key,
)
from marketplace import UNCHANGED, Page, SellerNotFound

router = APIRouter(prefix="/v1/sellers", tags=["sellers"], route_class=ApiRoute)


@router.post(
    "",
    status_code=201,
    dependencies=[PlatformAccess],
    responses={200: {"model": SellerOut, "description": "The seller existed with these terms."}},
)
def create_seller(
    body: SellerCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    response: Response,
    livemode: KeyMode,
) -> SellerOut:
    """Create a seller of the key's mode and its credit-normal ledger account (in the platform
    ledger of its currency and mode, created on first use). The same request again returns the
    seller (200); the same id with other terms, or taken in the other mode (ids are one
    namespace), is a 409 ``seller_exists``. ``test_clock`` (test mode only): the seller lives on
    that test clock's time (404 ``test_clock_not_found``)."""
    try:
        market.get_seller(conn, body.id)
        existed = True
    except SellerNotFound:
        existed = False
    seller = market.create_seller(
        conn,
        seller_id=body.id,
        name=body.name,
        currency=body.currency,
        hold_period=body.hold_period,
        rolling_reserve=body.rolling_reserve.to_domain() if body.rolling_reserve else None,
        metadata=dict(body.metadata),
        livemode=livemode,
        test_clock_id=body.test_clock,
    )
    if existed:
        response.status_code = 200
    response.headers["Location"] = f"/v1/sellers/{seller.id}"
    return SellerOut.model_validate(seller)


@router.get("", dependencies=[AnyRole])
def list_sellers(
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    livemode: KeyMode,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[SellerOut]:
    """Sellers by id. A seller key sees only its own seller."""
    after = decode_key_cursor("sellers", after_cursor)
    if is_seller_key(principal):
        assert principal.seller_id is not None
        own = [] if after is not None else [principal.seller_id]
        try:
            items = [market.get_seller(conn, sid, livemode=livemode) for sid in own]
            page = Page(items=items, next_after=None)
        except SellerNotFound:  # a key for a seller not created yet
            page = Page(items=[], next_after=None)
    else:
        page = market.list_sellers(conn, livemode=livemode, after=after, limit=per_page)
    return paginate(response, "sellers", page, per_page, SellerOut)


@router.get("/{seller_id}", dependencies=[AnyRole])
def get_seller(
    seller_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> SellerOut:
    check_seller_visible(principal, seller_id)
    return SellerOut.model_validate(market.get_seller(conn, seller_id))


@router.patch("/{seller_id}", dependencies=[PlatformAccess])
def update_seller(
    seller_id: str, body: SellerUpdate, conn: DbConnection, market: MarketplaceDep
) -> SellerOut:
    """Change the name, metadata, hold period, rolling reserve or instant daily limit. The hold
    period and the reserve apply to earnings booked from now on; earnings already on hold keep
    their end."""
    reserve = (
        (body.rolling_reserve.to_domain() if body.rolling_reserve else None)
        if "rolling_reserve" in body.model_fields_set
        else UNCHANGED
    )
    seller = market.update_seller(
        conn,
        seller_id,
        name=body.name,
        hold_period=body.hold_period,
        rolling_reserve=reserve,
        metadata=dict(body.metadata) if body.metadata is not None else None,
        instant_daily_limit=body.instant_daily_limit
        if "instant_daily_limit" in body.model_fields_set
        else UNCHANGED,
    )
    return SellerOut.model_validate(seller)


@router.get("/{seller_id}/balances", dependencies=[AnyRole])
def get_seller_balances(
    seller_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    payouts: PayoutsDep,
    principal: CurrentPrincipal,
) -> SellerBalancesOut:
    """Pending, posted and available (DESIGN.md, "The seller's money, step by step"), each with
    its credits and debits, and what is on hold, in reserve, in dispute and in transit (running
    totals: the same cost whatever the seller's history), and what an instant payout could pay
    now."""
    check_seller_visible(principal, seller_id)
    # One statement: running totals, and the day's instant payouts by an index.
    balances = market.seller_balances(conn, seller_id)
    instant = payouts.instant_availability(balances)
    return SellerBalancesOut.model_validate(balances, context={"instant": instant})
