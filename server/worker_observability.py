"""The worker's observability: log context and outcome counts for every activity, and the
worker's metrics endpoint.

``ActivityObservabilityInterceptor`` binds, for each activity attempt, ``workflow_id``,
``workflow_type``, ``activity`` and (when the input has one) ``seller_id`` to the log context
(``observability.logs``), so every line the activity logs, through any logger, carries them
(the SDK copies the context into the activity's thread); and counts the attempt in
``payouts_activity_executions{activity,outcome}``.

``WorkerMetrics`` serves one Prometheus endpoint per worker process on
``PAYOUTS_WORKER_METRICS_PORT``: the platform's own counters (prometheus-client's default
registry: hold releases, activity executions, ledger writes) followed by the Temporal SDK's
worker metrics (``temporal_*``: task slots, poll and schedule-to-start latencies, ...). The SDK
exports those from its Rust core on a Prometheus endpoint of its own; that one is bound to a
free loopback port and its text appended to ours, so a scraper needs one port per worker.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from temporalio import activity
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from observability.logs import log_context
from observability.metrics import ACTIVITY_EXECUTIONS

log = logging.getLogger(__name__)


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        seller_id = next(
            (getattr(arg, "seller_id", None) for arg in input.args if hasattr(arg, "seller_id")),
            None,
        )
        with log_context(
            workflow_id=info.workflow_id,
            workflow_type=info.workflow_type,
            activity=info.activity_type,
            seller_id=seller_id,
        ):
            try:
                result = await super().execute_activity(input)
            except BaseException:
                outcome = "cancelled" if activity.is_cancelled() else "failed"
                ACTIVITY_EXECUTIONS.labels(activity=info.activity_type, outcome=outcome).inc()
                raise
            ACTIVITY_EXECUTIONS.labels(activity=info.activity_type, outcome="completed").inc()
            return result


class ActivityObservabilityInterceptor(Interceptor):
    """Log context and outcome counts for every activity the worker runs."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _MetricsHandler(BaseHTTPRequestHandler):
    sdk_url: str | None = None

    def do_GET(self) -> None:
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body = generate_latest(REGISTRY)
        if self.sdk_url is not None:
            try:
                with urllib.request.urlopen(self.sdk_url, timeout=2) as answer:
                    body += answer.read()
            except OSError:
                log.warning("the Temporal SDK metrics endpoint did not answer", exc_info=True)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes are not worth a log line each


class WorkerMetrics:
    """The worker's metrics endpoint. ``start()`` binds ``host:port`` (port 0: a free one) and
    returns the Temporal ``Runtime`` to connect the worker's client with (its SDK metrics go to
    a loopback endpoint that ours appends)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Runtime:
        sdk_address = f"127.0.0.1:{free_loopback_port()}"
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=sdk_address))
        )
        handler = type(
            "MetricsHandler", (_MetricsHandler,), {"sdk_url": f"http://{sdk_address}/metrics"}
        )
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-metrics", daemon=True
        )
        self._thread.start()
        log.info("worker metrics at http://%s:%d/metrics", self.host, self.port)
        return runtime

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
