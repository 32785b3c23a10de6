"""Dependencies that endpoints declare: the request's database connection and the ledger.

    def get_thing(conn: DbConnection, ledger: LedgerServiceDep, principal: CurrentPrincipal): ...

``DbConnection`` is the request's connection, opened and committed (or rolled back) by
``api.routing.ApiRoute`` in the endpoint's own thread (in a transaction for a write, autocommit
for a read); endpoints never commit. (``CurrentPrincipal``, ``ReadAccess`` and ``WriteAccess`` live
in ``api.auth``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy import Connection

from ledger_core import LedgerService

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient


class _PendingConnection:
    """What the dependency gives before the endpoint starts; ``ApiRoute``'s endpoint wrapper puts
    the connection in its place, opened in the endpoint's thread."""

    def __repr__(self) -> str:
        return "<the request's connection, opened when the endpoint starts>"


PENDING_CONNECTION: Any = _PendingConnection()


async def get_connection(request: Request) -> Connection:
    if getattr(request.state, "principal", None) is None:
        raise RuntimeError("this route does not run in a unit of work: use api.routing.ApiRoute")
    return cast(Connection, PENDING_CONNECTION)


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
