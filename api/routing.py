"""``ApiRoute``: the request's unit of work, authentication and idempotency, for every route.

Routers opt in with ``APIRouter(route_class=ApiRoute)``. For each request the route:

1. reads the bearer token (401 without one, before any database work or body parsing) and
   authenticates it: from the app's key cache (``api.auth.KeyCache``, no query while the key is
   fresh there; a revoked or new key takes effect within ``PAYOUTS_API_KEY_CACHE_SECONDS``), else
   with one query; then scopes the request to the key's mode, live or test (``api.modes``: an
   object of the other mode named in the path is a 404 before anything runs);
2. runs the endpoint (dependencies and all). Its database connection (``DbConnection``) is opened
   in the endpoint's own thread, as the endpoint starts: for a request that writes (every method
   but GET and HEAD) inside a database transaction, for a read in autocommit mode (no BEGIN, no
   COMMIT: a read is one statement where it can be). On POST with an ``Idempotency-Key`` the key
   is claimed first thing in the transaction (or its stored response replayed);
3. on success commits, in the endpoint's thread, right after it returns (so a write is one
   thread-pool hop, and the statements deferred to the commit, ``ledger_core.deferred``, go with
   the COMMIT). With an ``Idempotency-Key`` it first stores the response (one more hop, once the
   response is rendered). On any error it rolls back. Errors raised by the commit itself
   (deferred constraint triggers) become the ledger's domain errors;
4. retries the whole unit of work on a deadlock or serialization failure (SQLSTATE 40P01/40001),
   which PostgreSQL resolves by aborting one transaction, so re-running it is safe, and on a
   unique violation (a concurrent request created the same key: the re-run is its replay);
5. answers quickly when it cannot serve (``Admission``): beyond ``max_in_flight`` requests at once
   a 503 ``overloaded`` at once; a request that has not been answered within ``request_timeout``
   a 503 ``timeout``; a pooled connection not free within a quarter of that, or a statement
   PostgreSQL cancelled at half of it (``server.database.create_api_engine``), a 503
   ``overloaded``; all with ``Retry-After``. A request answered ``timeout`` has its work
   abandoned: it ends in its own task (the thread holding its connection rolls it back), commits
   nothing from then on, and counts as in flight until it ended. Its commit may already have
   been under way: every write is keyed, so a retry is safe, whether that attempt committed or
   not;
6. answers 503 ``database_unavailable`` (``Retry-After``) when PostgreSQL cannot be reached or
   drops the connection (down, restarting). A pooled connection that a PostgreSQL restart left
   stale fails on the request's first statement, before anything was written: the pool then
   replaces its connections and the unit of work runs again (what ``pool_pre_ping`` would buy,
   without its round trip on every checkout).

Endpoints may be ``def`` (FastAPI runs them in the thread pool) or ``async def``. An async endpoint
(one that awaits Temporal) must run its database work through ``run_in_threadpool``: the
connection is synchronous. Its connection is opened before it starts and its transaction stays
open while it awaits the workflow, so an ``Idempotency-Key`` still covers the whole request and a
concurrent duplicate waits for the first to finish. A retried unit of work calls the workflow
again, which is safe because every workflow request is keyed (order id, dispute id, update id).
The price is one connection per request in flight: size the API's pool
(``PAYOUTS_DB_POOL_SIZE``) for the concurrent workflow requests it should carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import psycopg
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api import idempotency
from api.auth import ApiKeyRecord, KeyCache, bearer_token, hash_api_key
from api.dependencies import PENDING_CONNECTION
from api.modes import check_path_objects, enter_mode
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
QUERY_CANCELED = "57014"  # statement_timeout: the statement ran past its share of the deadline
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


class Admission:
    """How much an API process takes on: ``max_in_flight`` requests at once, each answered
    within ``request_timeout`` seconds."""

    def __init__(self, max_in_flight: int, request_timeout: float) -> None:
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self.in_flight = 0

    def release(self, _work: object = None) -> None:
        """A request's work has ended (answered in time or not)."""
        self.in_flight -= 1


def overloaded(detail: str) -> Problem:
    return Problem(503, "overloaded", detail, headers={"Retry-After": "1"})


def no_free_connection() -> Problem:
    return overloaded("No database connection was free in time; retry shortly.")


def database_too_busy() -> Problem:
    return overloaded("The database did not answer in time (too busy); retry shortly.")


_UNIT = contextvars.ContextVar["UnitOfWork | None"]("api_unit_of_work", default=None)
READS = frozenset({"GET", "HEAD"})
_ONE_MESSAGE = "__payouts_commits_in_one_message__"


_ONLY_WITH_KEY = "__payouts_connection_only_with_idempotency_key__"


def connection_only_with_idempotency_key(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint that uses its ``DbConnection`` only for a request with an
    Idempotency-Key (whose record must commit with its writes); without one it gets None and
    writes through other means (``api.booking``)."""
    setattr(endpoint, _ONLY_WITH_KEY, True)
    return endpoint


def commits_in_one_message(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint whose every write is deferred to the commit (``ledger_core.deferred``):
    without an Idempotency-Key its reads run in autocommit mode and its writes go to PostgreSQL
    as one message, ``BEGIN; ...; COMMIT`` (no BEGIN round trip, no transaction held open while
    the endpoint computes). A write that is not deferred would commit on its own there: do not
    mark such an endpoint."""
    setattr(endpoint, _ONE_MESSAGE, True)
    return endpoint


class Replay(Exception):
    """The Idempotency-Key's stored response: answer it, run nothing."""

    def __init__(self, response: Response) -> None:
        self.response = response


class Abandoned(Exception):
    """The request was answered (503 ``timeout``) before its unit of work was done: the work
    rolls back at its next step instead of committing."""


class UnitOfWork:
    """One attempt at a request's database work (``run_unit_of_work`` makes the attempts)."""

    def __init__(
        self,
        engine: Engine,
        principal: ApiKeyRecord,
        *,
        writes: bool,
        idem: idempotency.IdempotentRequest | None,
        one_message: bool = False,
    ) -> None:
        self.engine = engine
        self.principal = principal
        self.writes = writes
        self.idem = idem
        # The endpoint's writes are all deferred: its transaction is the commit's one message.
        self.one_message = one_message and idem is None
        self.conn: Connection | None = None
        self.started = False
        """The endpoint ran: a failure from now on may have written something."""
        self.committed = False
        self.abandoned = False
        """Set from the event loop when the request was answered without waiting for this."""

    def abandon(self) -> None:
        """The request has been answered: open nothing more, commit nothing (``Abandoned``).
        The thread that holds the connection rolls it back and returns it, as it always does;
        a statement in flight ends by itself within the statement timeout. (It is not cancelled
        from here: the cancel could reach the connection's next user in the pool.)"""
        self.abandoned = True

    def _check_abandoned(self) -> None:
        if self.abandoned:
            raise Abandoned("the request was answered before its unit of work was done")

    def open(self) -> Connection:
        """Blocking. The connection, in a transaction for a write (claiming the key, which may
        raise ``Replay``), in autocommit mode for a read."""
        self._check_abandoned()
        conn = self.engine.connect()
        try:
            if not self.writes:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            elif self.one_message:
                # BEGIN is sent with the deferred writes, at the commit (ledger_core.deferred).
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.begin()
            else:
                conn.begin()
                if self.idem is not None:
                    replay = idempotency.claim(conn, self.principal.id, self.idem)
                    if replay is not None:
                        raise Replay(replay)
        except BaseException:
            _close(conn)
            raise
        self.conn = conn
        return conn

    def commit(self, response: Response | None = None) -> None:
        """Blocking. Store the idempotent response (when keyed) and commit."""
        if self.conn is None or not self.writes:
            return
        self._check_abandoned()
        if self.idem is not None:
            assert response is not None
            idempotency.store(self.conn, self.principal.id, self.idem, response)
        self.conn.commit()
        self.committed = True

    def close(self) -> None:
        """Blocking. Rolls back whatever was not committed."""
        if self.conn is not None:
            _close(self.conn)
            self.conn = None


def _enter_endpoint(unit: UnitOfWork | None, kwargs: dict[str, Any], only_with_key: bool) -> None:
    """Open the endpoint's connection where ``DbConnection`` left the placeholder (an endpoint
    that asks for none gets none)."""
    names = [name for name, value in kwargs.items() if value is PENDING_CONNECTION]
    if not names:
        return
    conn = None
    if unit is not None and not (only_with_key and unit.idem is None):
        conn = unit.open()
    if unit is not None:
        unit.started = True
    for name in names:
        kwargs[name] = conn


def _commits_in_thread(unit: UnitOfWork | None, result: Any) -> bool:
    """A write without an Idempotency-Key commits as the endpoint returns, in its thread (a
    response the endpoint built as an error is rolled back instead)."""
    if unit is None or unit.idem is not None:
        return False
    return not (isinstance(result, Response) and result.status_code >= 400)


def wrap_endpoint(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The endpoint inside its unit of work: the connection opened as it starts, committed (or
    not) as it returns, in its own thread for a ``def`` endpoint."""
    only_with_key = bool(getattr(endpoint, _ONLY_WITH_KEY, False))
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            unit = _UNIT.get()
            if any(v is PENDING_CONNECTION for v in kwargs.values()) and not (
                only_with_key and unit is not None and unit.idem is None
            ):
                await run_in_threadpool(_enter_endpoint, unit, kwargs, only_with_key)
            else:
                _enter_endpoint(unit, kwargs, only_with_key)  # no connection: no thread
            result = await endpoint(*args, **kwargs)
            if unit is not None and _commits_in_thread(unit, result):
                await run_in_threadpool(_finish, unit)
            return result

        return run_async

    def run_sync(*args: Any, **kwargs: Any) -> Any:
        unit = _UNIT.get()
        _enter_endpoint(unit, kwargs, only_with_key)
        result = endpoint(*args, **kwargs)
        if unit is not None and _commits_in_thread(unit, result):
            _finish(unit)
        return result

    # Declared async, so that FastAPI runs the endpoint here with one thread-pool hop (opening,
    # running and committing in that thread) and renders the response on the event loop: for a
    # ``def`` endpoint it would take a second hop to validate the response.
    @functools.wraps(endpoint)
    async def run_sync_in_thread(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(run_sync, *args, **kwargs)

    return run_sync_in_thread


def _finish(unit: UnitOfWork) -> None:
    try:
        unit.commit()
    finally:
        unit.close()


def _close(conn: Connection) -> None:
    try:
        conn.close()  # rolls back whatever was not committed
    except Exception:  # the connection may be broken; the pool discards it
        log.warning("closing a request connection failed", exc_info=True)


async def _authenticate(request: Request, token: str) -> ApiKeyRecord:
    cache: KeyCache = request.app.state.key_cache
    known, record = cache.get(hash_api_key(token))
    if known and record is not None:
        return record
    with _before_the_unit_of_work():
        return await run_in_threadpool(cache.authenticate, request.app.state.engine, token)


@contextlib.contextmanager
def _before_the_unit_of_work() -> Iterator[None]:
    """A query before the unit of work (the key, an object's mode) that fails for want of the
    database: the same 503s as in it."""
    try:
        yield
    except SQLAlchemyTimeoutError as exc:
        raise no_free_connection() from exc
    except (DBAPIError, psycopg.Error) as exc:
        if sqlstate(exc) == QUERY_CANCELED:
            raise database_too_busy() from exc
        if is_database_unavailable(exc):
            raise database_unavailable(exc) from exc
        raise


async def run_unit_of_work(
    request: Request, handler: Handler, *, idempotent: bool, one_message: bool = False
) -> Response:
    """Run ``handler`` as one authenticated, idempotent, retried database transaction,
    admitted and answered in time (``Admission``)."""
    admission: Admission = request.app.state.admission
    if admission.in_flight >= admission.max_in_flight:
        raise overloaded(
            f"This API process serves {admission.max_in_flight} requests at once; retry shortly."
        )
    # The work runs as a task of its own, so that the answer can be given at the deadline while
    # the work ends in order: a thread that holds the request's connection is never raced by a
    # cleanup from here. Until it ends it counts as in flight.
    admission.in_flight += 1
    attempts: list[UnitOfWork] = []
    work = asyncio.ensure_future(
        _unit_of_work(
            request, handler, idempotent=idempotent, one_message=one_message, attempts=attempts
        )
    )
    work.add_done_callback(admission.release)
    await asyncio.wait((work,), timeout=admission.request_timeout)  # cancels nothing
    if work.done():
        return work.result()
    for unit in attempts:
        unit.abandon()
    work.add_done_callback(_abandoned_outcome)
    raise Problem(
        503,
        "timeout",
        f"The request could not be answered within {admission.request_timeout:g} s; retry it "
        "(with the same Idempotency-Key): a write is never done twice.",
        headers={"Retry-After": "1"},
    )


def _abandoned_outcome(work: asyncio.Future[Response]) -> None:
    """How the work of a request answered 503 ``timeout`` ended (logged, never raised)."""
    if work.cancelled():
        return
    error = work.exception()
    if error is None:
        # Finished past the deadline but before its commit could be stopped: the client's retry
        # with the same key (or the write's own key) answers with what it did.
        log.info("a request answered 503 timeout completed its work after the deadline")
    elif not isinstance(error, Abandoned):
        log.info("a request answered 503 timeout failed afterwards: %r", error)


async def _unit_of_work(
    request: Request,
    handler: Handler,
    *,
    idempotent: bool,
    one_message: bool,
    attempts: list[UnitOfWork],
) -> Response:
    token = bearer_token(request.headers.get("authorization"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_SIZE:
        raise Problem(
            413, "payload_too_large", f"The request body is larger than {MAX_BODY_SIZE} bytes."
        )
    principal = await _authenticate(request, token)
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
    request.state.principal = principal
    # The key's mode is the request's (objects of the other mode named in the path: a
    # dependency of every route, ``check_path_objects``).
    enter_mode(principal)
    # Every log line of the request names the seller it concerns (api.observability).
    bind_log_context(seller_id=principal.seller_id or request.path_params.get("seller_id"))
    engine: Engine = request.app.state.engine
    writes = request.method not in READS

    attempt = 0
    while True:
        attempt += 1
        unit = UnitOfWork(engine, principal, writes=writes, idem=idem, one_message=one_message)
        attempts.append(unit)
        token_var = _UNIT.set(unit)
        try:
            response = await handler(request)
            if unit.conn is not None and response.status_code < 400 and not unit.committed:
                # Keyed (the stored response needs the rendered body) or an async endpoint.
                await run_in_threadpool(unit.commit, response)
            return response
        except Replay as replay:
            return replay.response
        except SQLAlchemyTimeoutError as exc:
            raise no_free_connection() from exc
        except (DBAPIError, psycopg.Error) as exc:
            if sqlstate(exc) == QUERY_CANCELED:
                raise database_too_busy() from exc
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
                if not unit.started and attempt < MAX_ATTEMPTS:
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
            _UNIT.reset(token_var)
            if unit.conn is not None:
                await run_in_threadpool(unit.close)


class ApiRoute(APIRoute):
    """An ``APIRoute`` whose requests run in ``run_unit_of_work``; POST routes are idempotent.
    Its OpenAPI lists the problem responses every such route may give (``DOCUMENTED_ERRORS``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["responses"] = {
            **problem_responses(DOCUMENTED_ERRORS),
            **(kwargs.get("responses") or {}),
        }
        # After the route's own dependencies (its role checks), before its parameters.
        kwargs["dependencies"] = [*(kwargs.get("dependencies") or ()), Depends(check_path_objects)]
        if "POST" in {m.upper() for m in kwargs.get("methods") or ()}:
            kwargs["dependencies"] = [
                *kwargs["dependencies"],
                Depends(idempotency.document_idempotency_key),
            ]
        self.one_message = bool(getattr(endpoint, _ONE_MESSAGE, False))
        super().__init__(path, wrap_endpoint(endpoint), **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        idempotent = "POST" in (self.methods or set())
        one_message = self.one_message

        async def unit_of_work(request: Request) -> Response:
            return await run_unit_of_work(
                request, handler, idempotent=idempotent, one_message=one_message
            )

        return unit_of_work
