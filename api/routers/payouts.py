"""``/v1/sellers/{id}/payout_account``, ``/v1/sellers/{id}/payouts`` and ``/v1/payouts``: where a
seller is paid (the account number masked in every response), manual payouts through the payout
workflow (``payout/<payout id>``), and reading them and their items (what each paid for,
``marketplace.payout_items``).

A seller key reads its own payout account and payouts only (others are 404) and creates nothing:
payouts and destinations are the platform's decisions. A payout's id is derived from the
``Idempotency-Key`` (``po_<hash>``) or generated; either way a repeat with the key replays.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Header, Response
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.idempotency import key_derived_id
from api.modes import KeyMode
from api.pagination import (
    AfterCursor,
    PerPage,
    decode_key_cursor,
    encode_key_cursor,
    paginate,
)
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas.common import Attributes, ListResponse
from api.schemas.payout_items import PayoutItemsOut
from api.schemas.payouts import PayoutAccountIn, PayoutAccountOut, PayoutCreate, PayoutOut
from api.scoping import (
    AnyRole,
    MarketplaceDep,
    PlatformAccess,
    check_seller_visible,
    check_visible,
    visible_seller,
)
from api.workflow_calls import WorkflowsDep
from marketplace import Payout, Payouts, payout_not_found
from marketplace.payout_items import list_items
from temporal_calls import payouts as payout_calls

router = APIRouter(tags=["payouts"], route_class=ApiRoute)


def _payouts(market: Any) -> Payouts:
    return Payouts(market)


@router.put("/v1/sellers/{seller_id}/payout_account", dependencies=[PlatformAccess])
def put_payout_account(
    seller_id: str, body: PayoutAccountIn, conn: DbConnection, market: MarketplaceDep
) -> PayoutAccountOut:
    """Where the seller is paid. Payouts already made keep the destination they had."""
    account = _payouts(market).set_payout_account(
        conn, seller_id, body.account_number, body.routing_number, body.holder_name
    )
    return PayoutAccountOut.model_validate(account)


@router.get("/v1/sellers/{seller_id}/payout_account", dependencies=[AnyRole])
def get_payout_account(
    seller_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> PayoutAccountOut:
    check_seller_visible(principal, seller_id)
    return PayoutAccountOut.model_validate(_payouts(market).get_payout_account(conn, seller_id))


@router.post("/v1/sellers/{seller_id}/payouts", status_code=201, dependencies=[PlatformAccess])
async def create_payout(
    seller_id: str,
    body: PayoutCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    calls: WorkflowsDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> PayoutOut:
    """A manual payout: the money is reserved before this answers (201, status ``pending``);
    the payout workflow then submits it to the rail. ``method`` instant: over a real-time rail,
    for a fee (``fee``) debited on top of the amount. Errors: 422 ``nothing_to_pay``,
    ``payout_account_missing``, ``payout_account_failed``, ``insufficient_balance``,
    ``instant_not_supported``, ``instant_limit_exceeded``; 404 ``seller_not_found``."""
    await run_in_threadpool(market.get_seller, conn, seller_id)
    if idempotency_key:
        payout_id = key_derived_id("po", seller_id, idempotency_key)
    else:
        payout_id = f"po_{uuid.uuid4().hex}"
    await calls.call(
        lambda client: payout_calls.start_payout(
            client,
            payout_id,
            seller_id,
            body.amount,
            metadata=body.metadata,
            task_queue=calls.task_queue,
            method=body.method,
        )
    )
    # The reservation committed in the activity's own transaction: read it fresh.
    payout = await run_in_threadpool(_read_committed, conn.engine, market, payout_id)
    return PayoutOut.model_validate(payout)


def _read_committed(engine: Any, market: Any, payout_id: str) -> Payout:
    with engine.connect() as fresh:
        return _payouts(market).get_payout(fresh, payout_id)


@router.get("/v1/payouts/{payout_id}", dependencies=[AnyRole])
def get_payout(
    payout_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> PayoutOut:
    payout = _payouts(market).get_payout(conn, payout_id)
    check_visible(principal, payout.seller_id, payout_not_found(payout_id))
    return PayoutOut.model_validate(payout)


@router.get("/v1/payouts/{payout_id}/items", dependencies=[AnyRole])
def get_payout_items(
    payout_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> PayoutItemsOut:
    """What the payout pays out, line by line, fixed when it was reserved: the seller's ledger
    entries (earnings by order, refunds, chargebacks, returned payouts, adjustments) and the
    lines of no entry (held back, brought and carried forward, the instant fee). ``total``, the
    sum of every line, is the payout's amount. A payout made before payouts were itemized
    answers ``itemized`` false and no lines."""
    payout = _payouts(market).get_payout(conn, payout_id)
    check_visible(principal, payout.seller_id, payout_not_found(payout_id))
    after = decode_key_cursor("payout_items", after_cursor)
    if after is not None and not re.fullmatch(r"[0-9]{1,9}", after):
        raise Problem(422, "invalid_cursor", "after_cursor is not a cursor of this list.")
    items = list_items(conn, payout, after=None if after is None else int(after), limit=per_page)
    next_cursor = None
    if items.next_after is not None:
        next_cursor = encode_key_cursor("payout_items", str(items.next_after))
        response.headers["X-After-Cursor"] = next_cursor
    response.headers["X-Per-Page"] = str(per_page)
    return PayoutItemsOut.model_validate(Attributes(items, next_cursor=next_cursor))


@router.get("/v1/payouts", dependencies=[AnyRole])
def list_payouts(
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    livemode: KeyMode,
    seller_id: str | None = None,
    status: str | None = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[PayoutOut]:
    """Payouts by id; a seller key sees its own only."""
    seller_id = visible_seller(principal, seller_id)
    page = _payouts(market).list_payouts(
        conn,
        seller_id=seller_id,
        status=status,
        livemode=livemode,
        after=decode_key_cursor("payouts", after_cursor),
        limit=per_page,
    )
    return paginate(response, "payouts", page, per_page, PayoutOut)


@router.post("/v1/payouts/{payout_id}/cancel", dependencies=[PlatformAccess])
async def cancel_payout(
    payout_id: str, conn: DbConnection, market: MarketplaceDep, calls: WorkflowsDep
) -> PayoutOut:
    """Operators cancel a payout not yet submitted to the rail (409 ``invalid_payout_state``
    after)."""
    await run_in_threadpool(_payouts(market).get_payout, conn, payout_id)
    await calls.call(lambda client: payout_calls.cancel_payout(client, payout_id))
    return PayoutOut.model_validate(
        await run_in_threadpool(_read_committed, conn.engine, market, payout_id)
    )
