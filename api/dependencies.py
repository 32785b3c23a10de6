"""Dependencies that endpoints declare: the request's database connection and the ledger.

    def get_thing(conn: DbConnection, ledger: LedgerServiceDep, principal: CurrentPrincipal): ...

``DbConnection`` is inside the request's database transaction, opened and committed (or rolled
back) by ``api.routing.ApiRoute``; endpoints never commit. (``CurrentPrincipal``, ``ReadAccess``
and ``WriteAccess`` live in ``api.auth``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, Request
from sqlalchemy import Connection

from ledger_core import LedgerService

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient


async def get_connection(request: Request) -> Connection:
    conn = getattr(request.state, "db", None)
    if not isinstance(conn, Connection):
        raise RuntimeError("this route does not run in a unit of work: use api.routing.ApiRoute")
    return conn


async def get_ledger_service(request: Request) -> LedgerService:
    service = request.app.state.ledger
    assert isinstance(service, LedgerService)
    return service


async def get_temporal_client(request: Request) -> TemporalClient:
    client = getattr(request.app.state, "temporal_client", None)
    if client is None:
        raise RuntimeError("create_app was given no Temporal client")
    return cast("TemporalClient", client)


DbConnection = Annotated[Connection, Depends(get_connection)]
LedgerServiceDep = Annotated[LedgerService, Depends(get_ledger_service)]
