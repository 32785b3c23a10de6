"""``/v1/sellers/{id}/payout_account``, ``/v1/sellers/{id}/payouts`` and ``/v1/payouts``: where a
seller is paid (the account number masked in every response), manual payouts through the payout
workflow (``payout/<payout id>``), and reading them.

A seller key reads its own payout account and payouts only (others are 404) and creates nothing:
payouts and destinations are the platform's decisions. A payout's id is derived from the
``Idempotency-Key`` (``po_<hash>``) or generated; either way a repeat with the key replays.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate_keyed
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas import ListResponse, RequestModel
from api.scoping import AnyRole, MarketplaceDep, PlatformAccess, check_seller_visible, is_seller_key
from api.workflow_calls import WorkflowsDep
from marketplace import Payout, PayoutAccount, PayoutNotFound, Payouts
from temporal_calls import payouts as payout_calls

router = APIRouter(tags=["payouts"], route_class=ApiRoute)


class PayoutAccountIn(RequestModel):
    account_number: str = Field(pattern=r"^[0-9]{4,34}$")
    routing_number: str = Field(pattern=r"^[0-9]{9}$")
    holder_name: str = Field(min_length=1, max_length=200)


class PayoutAccountOut(BaseModel):
    seller_id: str
    object: str = "payout_account"
    account_number_masked: str = Field(description="Only the last 4 digits are ever shown.")
    account_number_last4: str
    routing_number: str
    holder_name: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: PayoutAccount) -> PayoutAccountOut:
        return cls(
            seller_id=account.seller_id,
            account_number_masked=account.masked_account_number,
            account_number_last4=account.last4,
            routing_number=account.routing_number,
            holder_name=account.holder_name,
            created_at=account.created_at,
            updated_at=account.updated_at,
        )


class PayoutCreate(RequestModel):
    amount: int | None = Field(
        default=None, gt=0, description="Minor units; default: the whole available balance."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class PayoutOut(BaseModel):
    id: str
    object: str = "payout"
    seller_id: str
    currency: str
    amount: int
    status: str
    origin: str
    account_number_masked: str
    holder_name: str
    rail_reference: str | None
    failure_code: str | None
    failure_reason: str | None
    ledger_transaction_id: str
    return_transaction_id: str | None
    workflow_id: str
    created_at: datetime
    submitted_at: datetime | None
    paid_at: datetime | None
    failed_at: datetime | None
    returned_at: datetime | None
    cancelled_at: datetime | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, p: Payout) -> PayoutOut:
        return cls(
            id=p.id,
            seller_id=p.seller_id,
            currency=p.currency,
            amount=p.amount,
            status=str(p.status),
            origin=p.origin,
            account_number_masked=p.masked_account_number,
            holder_name=p.holder_name,
            rail_reference=p.rail_reference,
            failure_code=p.failure_code,
            failure_reason=p.failure_reason,
            ledger_transaction_id=str(p.ledger_transaction_id),
            return_transaction_id=str(p.return_transaction_id) if p.return_transaction_id else None,
            workflow_id=f"payout/{p.id}",
            created_at=p.created_at,
            submitted_at=p.submitted_at,
            paid_at=p.paid_at,
            failed_at=p.failed_at,
            returned_at=p.returned_at,
            cancelled_at=p.cancelled_at,
            metadata=p.metadata,
        )


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
    return PayoutAccountOut.of(account)


@router.get("/v1/sellers/{seller_id}/payout_account", dependencies=[AnyRole])
def get_payout_account(
    seller_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> PayoutAccountOut:
    check_seller_visible(principal, seller_id)
    return PayoutAccountOut.of(_payouts(market).get_payout_account(conn, seller_id))


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
    the payout workflow then submits it to the rail. Errors: 422 ``nothing_to_pay``,
    ``payout_account_missing``, ``insufficient_balance``; 404 ``seller_not_found``."""
    await run_in_threadpool(market.get_seller, conn, seller_id)
    if idempotency_key:
        digest = hashlib.sha256(f"{seller_id}\n{idempotency_key}".encode()).hexdigest()[:24]
        payout_id = f"po_{digest}"
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
        )
    )
    # The reservation committed in the activity's own transaction: read it fresh.
    payout = await run_in_threadpool(_read_committed, conn.engine, market, payout_id)
    return PayoutOut.of(payout)


def _read_committed(engine: Any, market: Any, payout_id: str) -> Payout:
    with engine.connect() as fresh:
        return _payouts(market).get_payout(fresh, payout_id)


@router.get("/v1/payouts/{payout_id}", dependencies=[AnyRole])
def get_payout(
    payout_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> PayoutOut:
    payout = _payouts(market).get_payout(conn, payout_id)
    if is_seller_key(principal) and principal.seller_id != payout.seller_id:
        raise PayoutNotFound(f"payout {payout_id!r} not found", resource="payout")
    return PayoutOut.of(payout)


@router.get("/v1/payouts", dependencies=[AnyRole])
def list_payouts(
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    seller_id: str | None = None,
    status: str | None = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[PayoutOut]:
    """Payouts by id; a seller key sees its own only."""
    if is_seller_key(principal):
        if seller_id is not None and seller_id != principal.seller_id:
            raise Problem(404, "seller_not_found", f"seller {seller_id!r} not found")
        seller_id = principal.seller_id
    page = _payouts(market).list_payouts(
        conn,
        seller_id=seller_id,
        status=status,
        after=decode_key_cursor("payouts", after_cursor),
        limit=per_page,
    )
    return paginate_keyed(response, "payouts", page, per_page, PayoutOut.of)


@router.post("/v1/payouts/{payout_id}/cancel", dependencies=[PlatformAccess])
async def cancel_payout(
    payout_id: str, conn: DbConnection, market: MarketplaceDep, calls: WorkflowsDep
) -> PayoutOut:
    """Operators cancel a payout not yet submitted to the rail (409 ``invalid_payout_state``
    after)."""
    await run_in_threadpool(_payouts(market).get_payout, conn, payout_id)
    await calls.call(lambda client: payout_calls.cancel_payout(client, payout_id))
    return PayoutOut.of(await run_in_threadpool(_read_committed, conn.engine, market, payout_id))
