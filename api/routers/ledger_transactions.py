"""``/v1/ledger_transactions``: write, post, archive, reverse and list transactions."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import AwareDatetime

from api.auth import ReadAccess, WriteAccess
from api.dependencies import DbConnection, LedgerServiceDep
from api.modes import KeyMode, NamedObjectsDep
from api.pagination import AfterCursor, PerPage, decode_cursor, paginate
from api.routing import ApiRoute
from api.schemas.common import ExternalId, ListResponse
from api.schemas.ledger_transactions import (
    LedgerTransactionCreate,
    LedgerTransactionOut,
    LedgerTransactionReversal,
    LedgerTransactionUpdate,
)
from ledger_core import TransactionStatus

router = APIRouter(
    prefix="/v1/ledger_transactions", tags=["ledger transactions"], route_class=ApiRoute
)


@router.post("", status_code=201, dependencies=[WriteAccess])
def create_ledger_transaction(
    body: LedgerTransactionCreate,
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    named: NamedObjectsDep,
) -> LedgerTransactionOut:
    """Write a pending or posted transaction; its balance conditions hold or nothing is written.
    Its ledger must be of the key's mode (its accounts are in it: the database checks that)."""
    named.check(conn, "ledger_id", str(body.ledger_id))
    txn = ledger.create_transaction(conn, body.to_new_transaction())
    response.headers["Location"] = f"/v1/ledger_transactions/{txn.id}"
    return LedgerTransactionOut.model_validate(txn)


@router.get("/{ledger_transaction_id}", dependencies=[ReadAccess])
def get_ledger_transaction(
    ledger_transaction_id: uuid.UUID, conn: DbConnection, ledger: LedgerServiceDep
) -> LedgerTransactionOut:
    return LedgerTransactionOut.model_validate(ledger.get_transaction(conn, ledger_transaction_id))


@router.get("", dependencies=[ReadAccess])
def list_ledger_transactions(
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    livemode: KeyMode,
    ledger_id: uuid.UUID | None = None,
    ledger_account_id: uuid.UUID | None = None,
    status: Literal["pending", "posted", "archived"] | None = None,
    external_id: Annotated[ExternalId | None, Query()] = None,
    effective_at_gte: Annotated[AwareDatetime | None, Query(alias="effective_at[gte]")] = None,
    effective_at_lt: Annotated[AwareDatetime | None, Query(alias="effective_at[lt]")] = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[LedgerTransactionOut]:
    page = ledger.list_transactions(
        conn,
        ledger_id=ledger_id,
        account_id=ledger_account_id,
        status=TransactionStatus(status) if status else None,
        external_id=external_id,
        effective_at_gte=effective_at_gte,
        effective_at_lt=effective_at_lt,
        livemode=livemode,
        after=decode_cursor("ledger_transactions", after_cursor),
        limit=per_page,
    )
    return paginate(response, "ledger_transactions", page, per_page, LedgerTransactionOut)


@router.patch("/{ledger_transaction_id}", dependencies=[WriteAccess])
def update_ledger_transaction(
    ledger_transaction_id: uuid.UUID,
    body: LedgerTransactionUpdate,
    conn: DbConnection,
    ledger: LedgerServiceDep,
) -> LedgerTransactionOut:
    """Post or archive a pending transaction, and/or change its metadata."""
    txn = ledger.update_transaction(
        conn,
        ledger_transaction_id,
        status=TransactionStatus(body.status) if body.status else None,
        metadata=dict(body.metadata) if body.metadata is not None else None,
    )
    return LedgerTransactionOut.model_validate(txn)


@router.post("/{ledger_transaction_id}/reversal", status_code=201, dependencies=[WriteAccess])
def reverse_ledger_transaction(
    ledger_transaction_id: uuid.UUID,
    conn: DbConnection,
    ledger: LedgerServiceDep,
    response: Response,
    body: Annotated[LedgerTransactionReversal | None, Body()] = None,
) -> LedgerTransactionOut:
    """Undo a posted transaction with a new posted one, every entry flipped (at most once)."""
    options = body or LedgerTransactionReversal()
    reversal = ledger.reverse_transaction(
        conn,
        ledger_transaction_id,
        external_id=options.external_id,
        description=options.description,
        metadata=dict(options.metadata),
        effective_at=options.effective_at,
    )
    response.headers["Location"] = f"/v1/ledger_transactions/{reversal.id}"
    return LedgerTransactionOut.model_validate(reversal)
