"""``/v1/ledgers``: a ledger holds accounts of one currency."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from api.auth import ReadAccess, WriteAccess
from api.dependencies import DbConnection, LedgerServiceDep
from api.modes import KeyMode
from api.pagination import AfterCursor, PerPage, decode_cursor, paginate
from api.routing import ApiRoute
from api.schemas.common import ListResponse
from api.schemas.ledgers import LedgerCreate, LedgerOut

router = APIRouter(prefix="/v1/ledgers", tags=["ledgers"], route_class=ApiRoute)


@router.post("", status_code=201, dependencies=[WriteAccess])
def create_ledger(
    body: LedgerCreate,
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    livemode: KeyMode,
) -> LedgerOut:
    """A ledger of the key's mode (a test key makes a test ledger: test money, apart)."""
    created = ledger.create_ledger(
        conn,
        name=body.name,
        currency=body.currency,
        currency_exponent=body.currency_exponent,
        description=body.description,
        metadata=body.metadata,
        livemode=livemode,
    )
    response.headers["Location"] = f"/v1/ledgers/{created.id}"
    return LedgerOut.model_validate(created)


@router.get("/{ledger_id}", dependencies=[ReadAccess])
def get_ledger(ledger_id: uuid.UUID, conn: DbConnection, ledger: LedgerServiceDep) -> LedgerOut:
    return LedgerOut.model_validate(ledger.get_ledger(conn, ledger_id))


@router.get("", dependencies=[ReadAccess])
def list_ledgers(
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    livemode: KeyMode,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[LedgerOut]:
    page = ledger.list_ledgers(
        conn,
        livemode=livemode,
        after=decode_cursor("ledgers", after_cursor),
        limit=per_page,
    )
    return paginate(response, "ledgers", page, per_page, LedgerOut)
