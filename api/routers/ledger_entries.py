"""``/v1/ledger_entries``: the entries of transactions, filterable by account and status."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from api.auth import ReadAccess
from api.dependencies import DbConnection, LedgerServiceDep
from api.modes import KeyMode
from api.pagination import AfterCursor, PerPage, decode_cursor, paginate
from api.routing import ApiRoute
from api.schemas.common import ListResponse
from api.schemas.ledger_transactions import LedgerEntryOut
from ledger_core import TransactionStatus

router = APIRouter(prefix="/v1/ledger_entries", tags=["ledger entries"], route_class=ApiRoute)


@router.get("", dependencies=[ReadAccess])
def list_ledger_entries(
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    livemode: KeyMode,
    ledger_id: uuid.UUID | None = None,
    ledger_account_id: uuid.UUID | None = None,
    ledger_transaction_id: uuid.UUID | None = None,
    status: Literal["pending", "posted", "archived"] | None = None,
    effective_at_gte: Annotated[AwareDatetime | None, Query(alias="effective_at[gte]")] = None,
    effective_at_lt: Annotated[AwareDatetime | None, Query(alias="effective_at[lt]")] = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[LedgerEntryOut]:
    page = ledger.list_entries(
        conn,
        ledger_id=ledger_id,
        account_id=ledger_account_id,
        transaction_id=ledger_transaction_id,
        status=TransactionStatus(status) if status else None,
        effective_at_gte=effective_at_gte,
        effective_at_lt=effective_at_lt,
        livemode=livemode,
        after=decode_cursor("ledger_entries", after_cursor),
        limit=per_page,
    )
    return paginate(response, "ledger_entries", page, per_page, LedgerEntryOut)
