"""Activities of the webhook delivery workflow: the next pending deliveries of a stream (one
endpoint, one seller), one signed attempt to send a delivery, and giving one up.

An attempt reads the delivery in one short transaction, POSTs the event's JSON (the same bytes on
every attempt) with a fresh ``Payouts-Signature`` (``t=<unix seconds>,v1=<HMAC-SHA256 of
"<t>.<body>">``, see ``signatures``), records the outcome in a second transaction, and raises a
retryable error on anything but a 2xx, so the workflow's retry policy is the back-off. A crash
after the receiver's 2xx and before the record sends it again: delivery is at least once, and
receivers deduplicate by the event id (also in ``Payouts-Event-Id``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

import signatures
from activities.database import in_transaction
from contracts.webhooks import (
    FAIL_WEBHOOK_DELIVERY,
    PENDING_WEBHOOK_DELIVERIES,
    SEND_WEBHOOK,
    WEBHOOK_ATTEMPT_FAILED,
    FailDeliveryInput,
    PendingDeliveriesInput,
    SendWebhookResult,
)
from marketplace.webhooks import Webhooks
from observability.metrics import WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Payouts-Signature"
USER_AGENT = "payouts-webhooks/1"
# How long one attempt waits for the receiver (connect + answer).
DEFAULT_TIMEOUT_SECONDS = 10.0


class WebhookActivities:
    """Built once per worker with its engine and an HTTP client (pooled connections)."""

    def __init__(
        self,
        engine: Engine,
        *,
        http: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        webhooks: Webhooks | None = None,
    ) -> None:
        self.engine = engine
        self.http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self.webhooks = webhooks or Webhooks()

    def all(self) -> list[Callable[..., Any]]:
        return [self.pending_deliveries, self.send, self.fail]

    @activity.defn(name=PENDING_WEBHOOK_DELIVERIES)
    def pending_deliveries(self, input: PendingDeliveriesInput) -> list[str]:
        return in_transaction(
            self.engine,
            lambda conn: self.webhooks.pending_deliveries(
                conn, input.endpoint_id, input.seller_id, limit=input.limit
            ),
        )

    @activity.defn(name=SEND_WEBHOOK)
    def send(self, delivery_id: str) -> SendWebhookResult:
        request = in_transaction(
            self.engine, lambda conn: self.webhooks.delivery_request(conn, delivery_id)
        )
        if request is None:
            return SendWebhookResult(delivery_id=delivery_id, outcome="skipped")
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signatures.sign(request.secret, timestamp, request.body),
            "Payouts-Event-Id": request.event_id,
            "Payouts-Event-Type": request.event_type,
            "Payouts-Delivery-Id": request.delivery_id,
            "Payouts-Delivery-Attempt": str(request.attempt),
        }
        attempted_at = datetime.now(UTC)
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            response = self.http.post(request.url, content=request.body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        duration_ms = int((time.monotonic() - started) * 1000)
        succeeded = error is None
        in_transaction(
            self.engine,
            lambda conn: self.webhooks.record_attempt(
                conn,
                delivery_id,
                attempted_at=attempted_at,
                response_status=status,
                error=error,
                duration_ms=duration_ms,
                succeeded=succeeded,
            ),
        )
        WEBHOOK_DELIVERIES.labels(
            direction="sent", outcome="succeeded" if succeeded else "attempt_failed"
        ).inc()
        if not succeeded:
            log.warning(
                "webhook delivery %s (%s) attempt %d to %s failed: %s",
                delivery_id,
                request.event_type,
                request.attempt,
                request.url,
                error,
            )
            raise ApplicationError(
                f"webhook delivery {delivery_id} attempt {request.attempt} to {request.url} "
                f"failed: {error}",
                type=WEBHOOK_ATTEMPT_FAILED,
                # A receiver that is down is expected, not a platform error: the SDK logs it at
                # DEBUG without a traceback; the attempt is in webhook_delivery_attempts.
                category=ApplicationErrorCategory.BENIGN,
            )
        return SendWebhookResult(
            delivery_id=delivery_id,
            outcome="succeeded",
            attempt=request.attempt,
            response_status=status,
        )

    @activity.defn(name=FAIL_WEBHOOK_DELIVERY)
    def fail(self, input: FailDeliveryInput) -> None:
        in_transaction(
            self.engine,
            lambda conn: self.webhooks.mark_failed(conn, input.delivery_id, input.reason),
        )
        WEBHOOK_DELIVERIES.labels(direction="sent", outcome="failed").inc()
