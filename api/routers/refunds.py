"""``POST /v1/sellers/{id}/earnings/{order_id}/refund``: refund (part of) an order.

A refund workflow (``refund/<id>``) does it: on hold, the pending earning is archived (and the
rest booked again with the same hold end); posted, the seller is debited (and may go below
zero). Idempotent by refund id: the
body's ``refund_id``, else one derived from the ``Idempotency-Key`` (``rf_<hash>``); one of them
is required. Errors: 422 ``refund_exceeds_earning``, 409 ``refund_conflict``, 404
``earning_not_found``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.dependencies import DbConnection
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas import RequestModel
from api.scoping import MarketplaceDep, PlatformAccess, earning_not_found
from api.workflow_calls import WorkflowsDep
from marketplace import EarningNotFound
from workflows import payout_client

router = APIRouter(tags=["refunds"], route_class=ApiRoute)


class RefundCreate(RequestModel):
    amount: int | None = Field(default=None, gt=0, description="Gross; default: all that is left.")
    refund_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")
    metadata: dict[str, Any] = Field(default_factory=dict)


class RefundOut(BaseModel):
    id: str
    object: str = "refund"
    order_id: str
    seller_id: str
    currency: str
    amount: int
    fee_amount: int
    seller_amount: int
    kind: str
    status: str
    ledger_transaction_id: str | None
    earning_status: str
    created_at: datetime


@router.post(
    "/v1/sellers/{seller_id}/earnings/{order_id}/refund",
    status_code=201,
    dependencies=[PlatformAccess],
)
async def refund_earning(
    seller_id: str,
    order_id: str,
    body: RefundCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    calls: WorkflowsDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> RefundOut:
    try:
        await run_in_threadpool(market.get_earning, conn, seller_id, order_id)
    except EarningNotFound:
        raise earning_not_found(order_id) from None
    refund_id = body.refund_id
    if refund_id is None:
        if not idempotency_key:
            raise Problem(
                422, "refund_id_required", "Send a refund_id or an Idempotency-Key header."
            )
        # The order's earning is the seller's: another seller's share of the same order, refunded
        # with the same key, is another refund.
        key = f"{seller_id}\n{order_id}\n{idempotency_key}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        refund_id = f"rf_{digest}"
    result = await calls.call(
        lambda client: payout_client.refund_earning(
            client,
            seller_id,
            order_id,
            refund_id,
            body.amount,
            metadata=body.metadata,
            task_queue=calls.task_queue,
        )
    )
    return RefundOut(
        id=result.id,
        order_id=result.order_id,
        seller_id=result.seller_id,
        currency=result.currency,
        amount=result.amount,
        fee_amount=result.fee_amount,
        seller_amount=result.seller_amount,
        kind=result.kind,
        status=result.status,
        ledger_transaction_id=result.ledger_transaction_id,
        earning_status=result.earning.status,
        created_at=result.created_at,
    )
