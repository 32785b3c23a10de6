"""``/v1/ledger_accounts``: accounts with their pending, posted and available balances."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from api.auth import ReadAccess, WriteAccess
from api.dependencies import DbConnection, LedgerServiceDep
from api.modes import KeyMode
from api.pagination import AfterCursor, PerPage, decode_cursor, paginate
from api.routing import ApiRoute
from api.schemas.common import ExternalId, ListResponse
from api.schemas.ledger_accounts import LedgerAccountCreate, LedgerAccountOut

router = APIRouter(prefix="/v1/ledger_accounts", tags=["ledger accounts"], route_class=ApiRoute)


@router.post("", status_code=201, dependencies=[WriteAccess])
def create_ledger_account(
    body: LedgerAccountCreate,
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    livemode: KeyMode,
) -> LedgerAccountOut:
    account = ledger.create_account(
        conn,
        ledger_id=body.ledger_id,
        name=body.name,
        normal_balance=body.normal_balance,
        currency=body.currency,
        external_id=body.external_id,
        description=body.description,
        metadata=body.metadata,
        livemode=livemode,  # a ledger of the other mode is not found
    )
    response.headers["Location"] = f"/v1/ledger_accounts/{account.id}"
    return LedgerAccountOut.model_validate(account)


@router.get("/{ledger_account_id}", dependencies=[ReadAccess])
def get_ledger_account(
    ledger_account_id: uuid.UUID,
    conn: DbConnection,
    ledger: LedgerServiceDep,
    as_of: Annotated[
        AwareDatetime | None,
        Query(
            description="Balances as of this effective_at instant (ISO 8601 with an offset; "
            "URL-encode '+' as %2B). Sums the entries effective at or before it."
        ),
    ] = None,
) -> LedgerAccountOut:
    account = ledger.get_account(conn, ledger_account_id, as_of=as_of)
    return LedgerAccountOut.model_validate(account, context={"as_of": as_of})


@router.get("", dependencies=[ReadAccess])
def list_ledger_accounts(
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    livemode: KeyMode,
    ledger_id: uuid.UUID | None = None,
    external_id: Annotated[ExternalId | None, Query()] = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[LedgerAccountOut]:
    page = ledger.list_accounts(
        conn,
        ledger_id=ledger_id,
        external_id=external_id,
        livemode=livemode,
        after=decode_cursor("ledger_accounts", after_cursor),
        limit=per_page,
    )
    return paginate(response, "ledger_accounts", page, per_page, LedgerAccountOut)
