"""The API's observability: request logging and metrics middleware, ``GET /metrics`` and the
readiness check behind ``GET /readyz``.

``RequestObservabilityMiddleware`` wraps every request: it takes the request id from a sane
``X-Request-Id`` header (else makes one), echoes it in the response, binds it to the log context
(``observability.logs``) for every line logged while handling the request, and ends with one
``request`` log line (method, route template, status, duration; it replaces uvicorn's access
log) and one observation of ``payouts_http_request_duration_seconds``. Labels use the route
TEMPLATE (``/v1/sellers/{seller_id}``), never the raw path, so ids do not multiply the series;
a request no route matched is labelled ``<unmatched>``.

``/metrics`` serves the app's own registry (HTTP histogram, payouts by status read from the
database at scrape time) and the process-wide counters of ``observability.metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response
from observability.logs import log_context

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient

log = logging.getLogger("api.request")

REQUEST_ID_HEADER = "x-request-id"
# Accept a caller's id only if it is short and plain (it goes into logs and a response header).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"
# How long a readiness probe waits for each dependency.
READINESS_TIMEOUT = 2.0
# How long a scrape reuses the payouts-by-status query's result.
PAYOUT_STATUS_CACHE_SECONDS = 5.0


def request_id_from(value: str | None) -> str:
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestObservabilityMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: it would run the app in another task and lose the
    context). Outermost but for Starlette's error middleware, so a crash is seen as a 500."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        raw_id = headers.get(REQUEST_ID_HEADER.encode())
        request_id = request_id_from(raw_id.decode("latin-1") if raw_id is not None else None)
        status = 500  # unless the app answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        started = time.perf_counter()
        with log_context(request_id=request_id) as context:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                duration = time.perf_counter() - started
                template = route_template(scope)
                method = scope.get("method", "")
                self.histogram.labels(method=method, route=template, status=str(status)).observe(
                    duration
                )
                seller = (scope.get("path_params") or {}).get("seller_id")
                if seller is not None and "seller_id" not in context:
                    context["seller_id"] = seller
                log.info(
                    "%s %s %d %.1fms",
                    method,
                    template,
                    status,
                    duration * 1000,
                    extra={
                        "method": method,
                        "route": template,
                        "path": scope.get("path", ""),
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                    },
                )


class PayoutsByStatusCollector(Collector):
    """``payouts_by_status{status}`` (count) and ``payouts_amount_by_status{status,currency}``
    (sum, minor units), read from the database at scrape time and cached briefly, so every API
    process reports the same platform-wide figures, across restarts."""

    def __init__(self, engine: Engine, ttl: float = PAYOUT_STATUS_CACHE_SECONDS) -> None:
        self.engine = engine
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._rows: list[tuple[str, str, int, int]] = []

    def _read(self) -> list[tuple[str, str, int, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT status, currency, count(*), coalesce(sum(amount), 0) "
                    "FROM payouts GROUP BY status, currency ORDER BY status, currency"
                )
            ).all()
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                try:
                    self._rows = self._read()
                    self._at = time.monotonic()
                except Exception:
                    log.warning("payouts by status: the database query failed", exc_info=True)
                    return
            rows = list(self._rows)
        counts = GaugeMetricFamily(
            "payouts_by_status", "Payouts in the database by status.", labels=["status"]
        )
        amounts = GaugeMetricFamily(
            "payouts_amount_by_status",
            "Sum of payout amounts (minor units) in the database by status and currency.",
            labels=["status", "currency"],
        )
        per_status: dict[str, int] = {}
        for status, currency, count, amount in rows:
            per_status[status] = per_status.get(status, 0) + count
            amounts.add_metric([status, currency], amount)
        for status, count in per_status.items():
            counts.add_metric([status], count)
        yield counts
        yield amounts


def install_observability(app: FastAPI, engine: Engine) -> None:
    """Request ids, request log lines and HTTP metrics on every request; ``GET /metrics``."""
    registry = CollectorRegistry(auto_describe=True)
    histogram = Histogram(
        "payouts_http_request_duration_seconds",
        "HTTP request latency by method, route template and status (its _count counts them).",
        ["method", "route", "status"],
        registry=registry,
    )
    registry.register(PayoutsByStatusCollector(engine))
    app.state.metrics_registry = registry
    app.add_middleware(RequestObservabilityMiddleware, histogram=histogram)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics() -> Response:
        """Prometheus text format. No authentication (scrapers reach it on the internal
        network; it names no seller)."""
        body = generate_latest(registry) + generate_latest(REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


async def readiness(
    engine: Engine, temporal_client: TemporalClient | None
) -> JSONResponse | dict[str, Any]:
    """200 when the database answers and (if the app has a Temporal client) Temporal answers;
    else 503 problem+json naming what is down in ``detail`` and ``unavailable``."""

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def database_ok() -> bool:
        try:
            await asyncio.wait_for(run_in_threadpool(ping), READINESS_TIMEOUT)
        except Exception:
            log.warning("readiness: the database is not reachable", exc_info=True)
            return False
        return True

    async def temporal_ok() -> bool:
        if temporal_client is None:
            return True
        from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

        try:
            await asyncio.wait_for(
                temporal_client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=timedelta(seconds=READINESS_TIMEOUT)
                ),
                READINESS_TIMEOUT + 0.5,
            )
        except Exception:
            log.warning("readiness: Temporal is not reachable", exc_info=True)
            return False
        return True

    db, temporal = await asyncio.gather(database_ok(), temporal_ok())
    down = [name for name, ok in (("database", db), ("temporal", temporal)) if not ok]
    if down:
        return problem_response(
            None,
            503,
            "service_unavailable",
            f"Not ready: {' and '.join(down)} not reachable.",
            extras={"unavailable": down},
        )
    checks = {"database": "ok"}
    if temporal_client is not None:
        checks["temporal"] = "ok"
    return {"status": "ok", "checks": checks}
