"""The simulated bank as its own HTTP service, shaped like a PSP's payouts API.

``python -m payment_rail`` (or ``serve()``) runs it with uvicorn; the platform talks to it with
``HttpPaymentRail`` and tests steer it with ``SimulatedBankAdmin``. Its state lives in SQLite in
the data dir, so a restarted service carries on where it stopped.

Endpoints (JSON; ``Authorization: Bearer <PAYOUTS_RAIL_API_KEY>`` when a key is set):

- ``POST /v1/payouts``: submit (body: a payout request; ``Idempotency-Key`` header, if sent, must
  equal ``payout_id``). 201 when new, 200 (``Idempotent-Replayed: true``) for a replay.
- ``GET /v1/payouts/{payout_id}``: the payout's status.
- ``POST /v1/instant_eligibility``: whether a destination (a bank account) takes instant payouts:
  ``{"instant": true}``. A POST, so the account number stays out of URLs and access logs.
- ``GET /healthz``.
- ``/admin/...``: the test controls (``SimulatedBankControls``).

Errors: ``{"error": {"type", "code", "message"}}`` with 400 (rejected), 401 (bad key), 404 (not
found), 409 (idempotency conflict), 503 (unavailable).
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import uvicorn
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter
from starlette.types import ASGIApp

from payment_rail.interface import (
    RailError,
    RailIdempotencyConflict,
    RailPayoutNotFound,
    RailRejected,
    RailUnavailable,
    account_from_json,
    request_from_json,
    status_to_json,
    submission_to_json,
)
from payment_rail.settings import RailSettings
from payment_rail.simulated import RailOutcome, SimulatedBank, SimulatedPayout

logger = logging.getLogger(__name__)

_PAYOUT = TypeAdapter(SimulatedPayout)
_PAYOUTS = TypeAdapter(list[SimulatedPayout])

_ERROR_STATUS: list[tuple[type[RailError], int, str]] = [
    (RailUnavailable, 503, "unavailable"),
    (RailIdempotencyConflict, 409, "idempotency_conflict"),
    (RailPayoutNotFound, 404, "not_found"),
    (RailRejected, 400, "rejected"),
]


def error_body(error_type: str, code: str, message: str) -> dict[str, Any]:
    return {"error": {"type": error_type, "code": code, "message": message}}


class ForceOutcomeBody(BaseModel):
    payout_id: str
    outcome: RailOutcome
    code: str | None = None
    reason: str | None = None


class ReturnBody(BaseModel):
    payout_id: str
    code: str = "no_account"
    reason: str | None = None


class UnavailableBody(BaseModel):
    calls: int = Field(default=1, ge=0)
    after_processing: bool = False


class SettleBody(BaseModel):
    payout_id: str | None = None


class AdvanceClockBody(BaseModel):
    seconds: float = Field(ge=0)


class WebhookRuleBody(BaseModel):
    count: int = Field(default=1, ge=1)
    payout_id: str | None = None
    copies: int = Field(default=2, ge=1)


class PayoutIdBody(BaseModel):
    payout_id: str


class WebhookUrlBody(BaseModel):
    url: str | None


def create_app(bank: SimulatedBank, *, api_key: str | None = None) -> FastAPI:
    """The HTTP API over ``bank``. The caller starts and closes the bank."""

    def authorize(authorization: Annotated[str | None, Header()] = None) -> None:
        if api_key is None:
            return
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), api_key.encode()):
            raise HTTPException(401, detail="invalid or missing API key")

    app = FastAPI(
        title="Simulated bank",
        description="The payout platform's simulated payment rail.",
        dependencies=[Depends(authorize)],
    )

    @app.exception_handler(RailError)
    def rail_error(request: Request, exc: RailError) -> JSONResponse:
        for cls, status, error_type in _ERROR_STATUS:
            if isinstance(exc, cls):
                return JSONResponse(error_body(error_type, exc.code, exc.message), status)
        return JSONResponse(error_body("rail_error", exc.code, exc.message), 500)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = "unauthorized" if exc.status_code == 401 else "http_error"
        return JSONResponse(error_body(code, code, str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(error_body("rejected", "invalid_request", message), 400)

    @app.exception_handler(ValueError)
    def value_error(request: Request, exc: ValueError) -> JSONResponse:
        # A control that does not apply (e.g. returning a payout that is not paid).
        return JSONResponse(error_body("rejected", "invalid_request", str(exc)), 400)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/payouts", status_code=201)
    def submit_payout(
        body: Annotated[dict[str, Any], Body()],
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        payout = request_from_json(body)
        if idempotency_key is not None and idempotency_key != payout.payout_id:
            raise RailRejected("Idempotency-Key must equal payout_id", code="invalid_request")
        submission, replayed = bank.submit_payout_detailed(payout)
        return JSONResponse(
            submission_to_json(submission),
            200 if replayed else 201,
            headers={"Idempotent-Replayed": "true"} if replayed else None,
        )

    @app.post("/v1/instant_eligibility")
    def instant_eligibility(body: Annotated[dict[str, Any], Body()]) -> dict[str, bool]:
        return {"instant": bank.supports_instant(account_from_json(body))}

    @app.get("/v1/payouts/{payout_id:path}")
    def get_payout(payout_id: str) -> dict[str, Any]:
        return status_to_json(bank.get_payout(payout_id))

    @app.post("/admin/force_outcome", status_code=204)
    def force_outcome(body: ForceOutcomeBody) -> None:
        bank.force_outcome(body.payout_id, body.outcome, code=body.code, reason=body.reason)

    @app.post("/admin/return")
    def return_payout(body: ReturnBody) -> dict[str, Any]:
        status = bank.return_payout(body.payout_id, code=body.code, reason=body.reason)
        return status_to_json(status)

    @app.post("/admin/unavailable", status_code=204)
    def make_unavailable(body: UnavailableBody) -> None:
        bank.make_unavailable(body.calls, after_processing=body.after_processing)

    @app.post("/admin/settle")
    def settle_now(body: SettleBody) -> dict[str, int]:
        return {"settled": bank.settle_now(body.payout_id)}

    @app.post("/admin/clock/advance", status_code=204)
    def advance_clock(body: AdvanceClockBody) -> None:
        bank.advance_clock(body.seconds)

    @app.post("/admin/webhooks/drop", status_code=204)
    def drop_webhooks(body: WebhookRuleBody) -> None:
        bank.drop_webhooks(body.count, payout_id=body.payout_id)

    @app.post("/admin/webhooks/duplicate", status_code=204)
    def duplicate_webhooks(body: WebhookRuleBody) -> None:
        bank.duplicate_webhooks(body.count, payout_id=body.payout_id, copies=body.copies)

    @app.post("/admin/webhooks/redeliver")
    def redeliver_webhooks(body: PayoutIdBody) -> dict[str, int]:
        return {"events": bank.redeliver_webhooks(body.payout_id)}

    @app.put("/admin/webhook_url", status_code=204)
    def set_webhook_url(body: WebhookUrlBody) -> None:
        bank.set_webhook_url(body.url)

    @app.get("/admin/payouts")
    def list_payouts() -> Any:
        return _PAYOUTS.dump_python(bank.list_payouts(), mode="json")

    @app.get("/admin/payouts/{payout_id:path}")
    def inspect(payout_id: str) -> Any:
        return _PAYOUT.dump_python(bank.inspect(payout_id), mode="json")

    return app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn, telling ``on_ready`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def default_data_dir() -> Path:
    return Path(os.environ.get("PAYOUTS_DATA_DIR", ".data")) / "rail"


def serve(
    settings: RailSettings | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "info",
) -> None:
    """Run the simulated bank as an HTTP service until SIGINT/SIGTERM.

    ``host``/``port``/``data_dir`` override the settings (``port=0``: any free port);
    ``on_ready(base_url)`` is called once it accepts connections."""
    settings = settings or RailSettings()
    host = host or settings.host
    port = settings.port if port is None else port
    data_dir = data_dir or settings.data_dir or default_data_dir()
    sock = _bind(host, port)
    url = _url(host, sock)
    bank = SimulatedBank(settings, data_dir=data_dir).start()
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; this handler
        # turns that into SystemExit, so the bank below closes too and the exit status is 0.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app = create_app(bank, api_key=settings.api_key)
        config = uvicorn.Config(app, log_level=log_level, access_log=False)
        server = _Server(config, (lambda: on_ready(url)) if on_ready else None)
        server.run(sockets=[sock])
    finally:
        bank.close()
        sock.close()


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a background thread (on a free port by default) and
    yield its base URL; stops it on exit. For tests and embedding::

        with SimulatedBank(settings) as bank, serve_in_thread(create_app(bank)) as url:
            rail = HttpPaymentRail(url)
    """
    sock = _bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the HTTP server did not start")
        time.sleep(0.01)
    try:
        yield _url(host, sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
