"""``ApiRoute``: the request's unit of work, authentication and idempotency, for every route.

Routers opt in with ``APIRouter(route_class=ApiRoute)``. For each request the route:

1. reads the bearer token (401 without one, before any database work or body parsing);
2. opens a connection and a database transaction, authenticates the key in it;
3. on POST with an ``Idempotency-Key``: claims the key in the same transaction (or replays);
4. runs the endpoint (dependencies and all), which uses that transaction through
   ``DbConnection`` and never commits;
5. on success stores the idempotent response and commits; on any error rolls back. Errors raised
   by the commit itself (deferred constraint triggers) become the ledger's domain errors;
6. retries the whole unit of work on a deadlock or serialization failure (SQLSTATE 40P01/40001),
   which PostgreSQL resolves by aborting one transaction, so re-running it is safe, and on a
   unique violation (a concurrent request created the same key: the re-run is its replay);
7. answers 503 ``database_unavailable`` (``Retry-After``) when PostgreSQL cannot be reached or
   drops the connection (down, restarting). A pooled connection that a PostgreSQL restart left
   stale fails on the request's first statement, before anything was written: the pool then
   replaces its connections and the unit of work runs again (what ``pool_pre_ping`` would buy,
   without its round trip on every checkout).

Endpoints may be ``def`` (FastAPI runs them in the thread pool) or ``async def``. An async endpoint
(one that awaits Temporal) must run its database work through ``run_in_threadpool``: the
connection is synchronous. Its unit of work is the same: the transaction (and a pooled
connection) stays open while it awaits the workflow, so an ``Idempotency-Key`` still covers the
whole request and a concurrent duplicate waits for the first to finish. A retried unit of work
calls the workflow again, which is safe because every workflow request is keyed (order id,
dispute id, update id). The price is one connection per request in flight: size the API's pool
(``PAYOUTS_DB_POOL_SIZE``) for the concurrent workflow requests it should carry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api import idempotency
from api.auth import ApiKeyRecord, authenticate, bearer_token
from api.problems import Problem, problem_responses
from ledger_core import translate_database_error
from observability.logs import bind_log_context

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Far above any valid request (1,000 entries and full metadata fit in a few hundred KB): a larger
# declared Content-Length is a 413 problem here. The app also caps every body (chunked ones too)
# at HARD_MAX_BODY_SIZE, where FastAPI answers a plain-text 413 before any route runs.
MAX_BODY_SIZE = 2 * 1024 * 1024
HARD_MAX_BODY_SIZE = 4 * MAX_BODY_SIZE
# Documented on every route (problem+json); a route's own ``responses`` win.
DOCUMENTED_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 503)
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
# unique_violation: a concurrent request created the same key first (the same order booked twice
# at once fails the second one's commit). Running the unit of work again answers as a replay of
# what committed; a violation that stays is a 409.
RERUN_SQLSTATES = frozenset({"23505"})
# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections (and class 08,
# connection_exception): the server is going away, restarting or full, not the request's fault.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, raw or wrapped by SQLAlchemy."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return orig.sqlstate if isinstance(orig, psycopg.Error) else None


def is_retryable(exc: BaseException) -> bool:
    return sqlstate(exc) in RETRYABLE_SQLSTATES


def is_database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (it is down or restarting)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, psycopg.OperationalError):
        return False
    state = orig.sqlstate
    # No SQLSTATE: the client library's own connection failure (refused, closed, bad).
    return state is None or state.startswith("08") or state in UNAVAILABLE_SQLSTATES


def database_unavailable(exc: BaseException) -> Problem:
    log.warning("the database is not reachable: %s", exc)
    return Problem(
        503,
        "database_unavailable",
        "The database is not reachable right now; retry the request (with the same "
        "Idempotency-Key).",
        headers={"Retry-After": "1"},
    )


def _domain_error(exc: BaseException) -> Exception | None:
    """The client-facing error behind a database error, if the input (not the server) caused it."""
    domain = translate_database_error(exc)
    if domain is not None:
        return domain
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, psycopg.Error):
        return None
    state = orig.sqlstate or ""
    if isinstance(orig, psycopg.DataError) or state.startswith("22"):
        # Bad data the models let through (e.g. out of range for PostgreSQL).
        return Problem(422, "invalid_value", f"A value was refused by the database: {orig}")
    if state.startswith("23"):
        log.warning("integrity error mapped to 409: %s", orig)
        return Problem(409, "conflict", "The request conflicts with the current state of the data.")
    return None


def _begin(engine: Engine) -> Connection:
    conn = engine.connect()
    try:
        conn.begin()
    except BaseException:
        conn.close()
        raise
    return conn


def _close(conn: Connection) -> None:
    try:
        conn.close()  # rolls back whatever was not committed
    except Exception:  # the connection may be broken; the pool discards it
        log.warning("closing a request connection failed", exc_info=True)


def _prepare(
    conn: Connection, token: str, idem: idempotency.IdempotentRequest | None
) -> tuple[ApiKeyRecord, Response | None]:
    principal = authenticate(conn, token)
    replay = idempotency.claim(conn, principal.id, idem) if idem is not None else None
    return principal, replay


def _finish(
    conn: Connection,
    principal: ApiKeyRecord,
    idem: idempotency.IdempotentRequest | None,
    response: Response,
) -> None:
    if idem is not None:
        idempotency.store(conn, principal.id, idem, response)
    conn.commit()


async def run_unit_of_work(request: Request, handler: Handler, *, idempotent: bool) -> Response:
    """Run ``handler`` as one authenticated, idempotent, retried database transaction."""
    token = bearer_token(request.headers.get("authorization"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_SIZE:
        raise Problem(
            413, "payload_too_large", f"The request body is larger than {MAX_BODY_SIZE} bytes."
        )
    idem: idempotency.IdempotentRequest | None = None
    raw_key = request.headers.get(idempotency.IDEMPOTENCY_HEADER)
    if idempotent and raw_key is not None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        idem = idempotency.IdempotentRequest(
            key=idempotency.parse_key(raw_key),
            method=request.method,
            path=path,
            request_hash=idempotency.body_hash(await request.body()),
        )
    engine: Engine = request.app.state.engine

    attempt = 0
    while True:
        attempt += 1
        try:
            conn = await run_in_threadpool(_begin, engine)
        except (DBAPIError, psycopg.Error) as exc:
            if is_database_unavailable(exc):
                raise database_unavailable(exc) from exc
            raise
        prepared = False
        try:
            principal, replay = await run_in_threadpool(_prepare, conn, token, idem)
            prepared = True
            if replay is not None:
                return replay
            request.state.db = conn
            request.state.principal = principal
            # Every log line of the request names the seller it concerns (api.observability).
            bind_log_context(seller_id=principal.seller_id or request.path_params.get("seller_id"))
            response = await handler(request)
            if response.status_code >= 400:
                return response  # an error answer: roll back, store nothing
            await run_in_threadpool(_finish, conn, principal, idem, response)
            return response
        except (DBAPIError, psycopg.Error) as exc:
            if sqlstate(exc) in RERUN_SQLSTATES and attempt < MAX_ATTEMPTS:
                log.info(
                    "re-running %s %s after a concurrent insert", request.method, request.url.path
                )
                continue
            if is_retryable(exc) and attempt < MAX_ATTEMPTS:
                log.info("retrying %s %s after %s", request.method, request.url.path, sqlstate(exc))
                continue
            if is_retryable(exc):
                raise Problem(
                    503,
                    "retry_later",
                    "The request kept conflicting with concurrent ones; retry it.",
                    headers={"Retry-After": "1"},
                ) from exc
            if is_database_unavailable(exc):
                if not prepared and attempt < MAX_ATTEMPTS:
                    # Nothing was written yet: most likely a connection a restart left stale.
                    log.info(
                        "retrying %s %s on a fresh connection", request.method, request.url.path
                    )
                    continue
                raise database_unavailable(exc) from exc
            domain = _domain_error(exc)
            if domain is not None:
                raise domain from exc
            raise
        finally:
            request.state.db = None
            await run_in_threadpool(_close, conn)


class ApiRoute(APIRoute):
    """An ``APIRoute`` whose requests run in ``run_unit_of_work``; POST routes are idempotent.
    Its OpenAPI lists the problem responses every such route may give (``DOCUMENTED_ERRORS``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["responses"] = {
            **problem_responses(DOCUMENTED_ERRORS),
            **(kwargs.get("responses") or {}),
        }
        if "POST" in {m.upper() for m in kwargs.get("methods") or ()}:
            kwargs["dependencies"] = [
                *(kwargs.get("dependencies") or ()),
                Depends(idempotency.document_idempotency_key),
            ]
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        idempotent = "POST" in (self.methods or set())

        async def unit_of_work(request: Request) -> Response:
            return await run_unit_of_work(request, handler, idempotent=idempotent)

        return unit_of_work
