"""The FastAPI application factory. No globals: the engine and the Temporal client are passed in
and kept on ``app.state``, where the dependencies (``api.dependencies``, ``api.scoping``,
``api.workflow_calls``) find them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from api.auth import KeyCache
from api.booking import BookingBatcher
from api.links import document_links
from api.modes import ModeCache
from api.observability import install_observability, readiness
from api.problems import (
    document_problems,
    install_problem_handlers,
    problem_responses,
)
from api.routers import (
    disputes,
    earning_batches,
    earnings,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
    ledgers,
    payout_schedules,
    payouts,
    rail_webhooks,
    reconciliation,
    refunds,
    sellers,
    statements,
    test_clocks,
    wallets,
    webhooks,
)
from api.routing import HARD_MAX_BODY_SIZE, Admission
from contracts.common import TASK_QUEUE
from ledger_core import LedgerService
from marketplace import InstantTerms, Marketplace
from observability.metrics import MeteredLedgerService

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient

# An API key is checked against the database at most this often per key and process: a revoked
# key stops working within this many seconds (PAYOUTS_API_KEY_CACHE_SECONDS).
DEFAULT_KEY_CACHE_SECONDS = 5.0
# PAYOUTS_API_REQUEST_TIMEOUT, PAYOUTS_API_MAX_IN_FLIGHT.
DEFAULT_REQUEST_TIMEOUT = 2.0
DEFAULT_MAX_IN_FLIGHT = 200

DESCRIPTION = """
A payout platform: sellers, their earnings held by Temporal workflows until they post, chargebacks,
and the double-entry ledger underneath (following Modern Treasury's Ledgers API).

* Amounts are integers in minor units (cents), never floats.
* Authenticate with `Authorization: Bearer <api key>`.
* Every POST accepts an `Idempotency-Key` header: a retry with the same key and body returns the
  first response again (with `Idempotency-Replayed: true`).
* Errors are `application/problem+json` (RFC 9457) with a stable `code`.
* Request bodies are strict: a field the operation does not declare is a 422 `validation_error`
  that names it in `unknown_parameters` (e.g. `["ledger_entries.0.memo"]`), and nothing is done.
  `metadata` takes any keys.
* Lists page with `per_page` and `after_cursor` (the previous page's `next_cursor`).
* Platform keys (admin, operator) see everything; a seller key sees its own seller only (another
  seller's resources are 404) and changes nothing; a wallet key likewise reads its own wallet only.
* Durations are ISO 8601 (`P7D`, `PT5S`, `P1DT12H`); instants are ISO 8601 with an offset.
"""


def create_app(
    engine: Engine,
    ledger: LedgerService | None = None,
    *,
    temporal_client: TemporalClient | None = None,
    workflow_task_queue: str = TASK_QUEUE,
    key_cache_seconds: float = DEFAULT_KEY_CACHE_SECONDS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    instant_terms: InstantTerms | None = None,
) -> FastAPI:
    """Build the API on ``engine``. ``ledger`` defaults to a new ``LedgerService``;
    ``temporal_client`` is for the routes that start and steer workflows (without one they answer
    503 ``temporal_unavailable``); ``workflow_task_queue`` is where new workflows are started
    (tests use a queue of their own); ``key_cache_seconds`` how long an authenticated key is
    remembered (``api.auth.KeyCache``: a revoked key is refused at most that long after);
    ``request_timeout`` the time within which every request is answered and ``max_in_flight``
    the requests served at once (beyond either: a 503 with Retry-After; ``api.routing``);
    ``instant_terms`` the instant payouts' fee and daily limit (for the balances' instantly
    available amount; the worker charges them). The
    engine should bound its pool wait and statements within ``request_timeout`` too
    (``server.database.create_api_engine``)."""
    app = FastAPI(
        title="Payouts API",
        version="1.0.0",
        description=DESCRIPTION,
        max_body_size=HARD_MAX_BODY_SIZE,
    )
    app.state.engine = engine
    app.state.key_cache = KeyCache(key_cache_seconds)
    app.state.mode_cache = ModeCache()
    app.state.admission = Admission(max_in_flight, request_timeout)
    app.state.ledger = ledger if ledger is not None else MeteredLedgerService()
    app.state.marketplace = Marketplace(app.state.ledger)
    app.state.instant_terms = instant_terms or InstantTerms()
    app.state.bookings = BookingBatcher(engine, app.state.marketplace)
    app.state.temporal_client = temporal_client
    app.state.workflow_task_queue = workflow_task_queue
    install_problem_handlers(app)
    install_observability(app, engine)
    document_problems(app)
    document_links(app)

    @app.get("/healthz", tags=["health"], include_in_schema=True)
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests. No authentication."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None, responses=problem_responses([503]))
    async def readyz() -> JSONResponse | dict[str, Any]:
        """Readiness: the database answers, and Temporal too when the app has a client (503
        problem+json naming what is down otherwise). No authentication."""
        return await readiness(engine, temporal_client)

    for module in (
        sellers,
        payout_schedules,
        payouts,
        rail_webhooks,
        refunds,
        reconciliation,
        earnings,
        earning_batches,
        disputes,
        ledgers,
        ledger_accounts,
        ledger_transactions,
        ledger_entries,
        webhooks,
        wallets,
        statements,
        test_clocks,
    ):
        app.include_router(module.router)
    app.include_router(wallets.transfers)
    return app
