"""Webhooks to subscribers: endpoints (created with a secret shown once, listed, deleted), the
deliveries of the recorded events (``marketplace.events`` fans each event out to one pending
delivery per subscribed endpoint), their attempts, re-sending, and what the delivery activities
need (the next pending deliveries of a stream, the signed request of one, recording an attempt's
outcome).

A ``pg_notify('webhook_deliveries', '<endpoint id> <seller id>')`` tells the worker's dispatcher
at commit which delivery streams have work; it starts their delivery workflows, which send the
deliveries in sequence, signed (``signatures``), retried with back-off (activities.webhooks).
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text, update
from sqlalchemy.engine import Row

from ledger_core.errors import ValidationFailed
from marketplace.checks import check_limit, utc_now
from marketplace.errors import (
    InvalidDeliveryState,
    WebhookDeliveryNotFound,
    WebhookEndpointNotFound,
)
from marketplace.events import check_event_types, event_from_row
from marketplace.rows import from_row, page, row_by_id
from marketplace.tables import (
    events,
    webhook_deliveries,
    webhook_delivery_attempts,
    webhook_endpoints,
)
from marketplace.types import Page

NOTIFY_CHANNEL = "webhook_deliveries"
MAX_URL = 2048
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """The endpoint was deleted before the delivery was sent."""


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    created_at: datetime
    deleted_at: datetime | None
    secret: str = field(repr=False)
    """Signs the deliveries. Shown once, when the endpoint is created."""
    livemode: bool = True
    """It receives the events of this mode only."""


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    seller_id: str
    sequence: int
    status: DeliveryStatus
    attempts: int
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    succeeded_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    livemode: bool = True
    """Its event's (and endpoint's) mode."""


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    delivery_id: str
    attempt: int
    attempted_at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """What one attempt sends: ``body`` to ``url``, signed with ``secret``."""

    delivery_id: str
    event_id: str
    event_type: str
    url: str
    secret: str = field(repr=False)
    body: bytes = field(repr=False)
    attempt: int
    """The number this attempt will have (1 for the first)."""


class Webhooks:
    """Webhook endpoints and deliveries. Every method takes a ``Connection`` inside a
    transaction the caller owns and never commits."""

    # ---------------------------------------------------------------- endpoints

    def create_endpoint(
        self,
        conn: Connection,
        *,
        url: str,
        event_types: Sequence[str],
        description: str = "",
        livemode: bool = True,
    ) -> WebhookEndpoint:
        """A new endpoint with a fresh secret (``whsec_``...), subscribed to ``event_types``
        (``["*"]``: all). It receives the events recorded from now on, of its mode only
        (``livemode`` False: test-mode events)."""
        if not isinstance(url, str) or len(url) > MAX_URL or not _URL.match(url):
            raise ValidationFailed(
                f"url must be an http:// or https:// URL of at most {MAX_URL} characters",
                field="url",
            )
        types = check_event_types(event_types)
        if not isinstance(description, str) or len(description) > 1000:
            raise ValidationFailed(
                "description must be at most 1000 characters", field="description"
            )
        row = conn.execute(
            webhook_endpoints.insert()
            .values(
                id=f"we_{secrets.token_hex(12)}",
                url=url,
                description=description,
                event_types=list(types),
                secret=f"whsec_{secrets.token_hex(32)}",
                created_at=utc_now(),
                livemode=livemode,
            )
            .returning(*webhook_endpoints.c)
        ).one()
        return _endpoint(row)

    def get_endpoint(self, conn: Connection, endpoint_id: str) -> WebhookEndpoint:
        row = row_by_id(conn, webhook_endpoints, endpoint_id)
        if row is None:
            raise endpoint_not_found(endpoint_id)
        return _endpoint(row)

    def list_endpoints(
        self,
        conn: Connection,
        *,
        include_deleted: bool = False,
        livemode: bool | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[WebhookEndpoint]:
        query = select(webhook_endpoints)
        if livemode is not None:
            query = query.where(webhook_endpoints.c.livemode == livemode)
        if not include_deleted:
            query = query.where(webhook_endpoints.c.deleted_at.is_(None))
        return page(conn, query, webhook_endpoints.c.id, after, limit, _endpoint)

    def delete_endpoint(self, conn: Connection, endpoint_id: str) -> WebhookEndpoint:
        """Stop sending to the endpoint: no new deliveries, pending ones cancelled. Its
        deliveries stay listed. Deleting a deleted endpoint is a no-op."""
        row = row_by_id(conn, webhook_endpoints, endpoint_id, for_update=True)
        if row is None:
            raise endpoint_not_found(endpoint_id)
        if row.deleted_at is not None:
            return _endpoint(row)
        now = utc_now()
        conn.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.endpoint_id == endpoint_id,
                webhook_deliveries.c.status == str(DeliveryStatus.PENDING),
            )
            .values(status=str(DeliveryStatus.CANCELLED), updated_at=now)
        )
        deleted = conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(deleted_at=now)
            .returning(*webhook_endpoints.c)
        ).one()
        return _endpoint(deleted)

    # ---------------------------------------------------------------- deliveries

    def get_delivery(self, conn: Connection, delivery_id: str) -> WebhookDelivery:
        row = conn.execute(
            _delivery_query().where(webhook_deliveries.c.id == delivery_id)
        ).one_or_none()
        if row is None:
            raise delivery_not_found(delivery_id)
        return _delivery(row)

    def list_deliveries(
        self,
        conn: Connection,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        seller_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        livemode: bool | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[WebhookDelivery]:
        """Deliveries oldest first (ids sort by creation time); with ``livemode``, those of
        that mode only (their event's)."""
        check_limit(limit)
        d = webhook_deliveries
        query = _delivery_query()
        if livemode is not None:
            query = query.where(events.c.livemode == livemode)
        if endpoint_id is not None:
            query = query.where(d.c.endpoint_id == endpoint_id)
        if event_id is not None:
            query = query.where(d.c.event_id == event_id)
        if seller_id is not None:
            query = query.where(d.c.seller_id == seller_id)
        if status is not None:
            try:
                query = query.where(d.c.status == str(DeliveryStatus(status)))
            except ValueError:
                raise ValidationFailed(
                    "status must be one of " + ", ".join(s.value for s in DeliveryStatus),
                    field="status",
                ) from None
        return page(conn, query, d.c.id, after, limit, _delivery)

    def list_attempts(self, conn: Connection, delivery_id: str) -> list[DeliveryAttempt]:
        self.get_delivery(conn, delivery_id)
        a = webhook_delivery_attempts
        rows = conn.execute(
            select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.attempt)
        ).all()
        return [from_row(DeliveryAttempt, r) for r in rows]

    def resend(self, conn: Connection, delivery_id: str) -> WebhookDelivery:
        """Send a failed (or already delivered) delivery again: back to ``pending``, and its
        stream's workflow is woken at commit. A pending delivery is left as it is; one whose
        endpoint was deleted raises ``InvalidDeliveryState``."""
        d = webhook_deliveries
        row = conn.execute(
            select(d, webhook_endpoints.c.deleted_at)
            .join(webhook_endpoints, webhook_endpoints.c.id == d.c.endpoint_id)
            .where(d.c.id == delivery_id)
            .with_for_update(of=d)
        ).one_or_none()
        if row is None:
            raise delivery_not_found(delivery_id)
        if row.deleted_at is not None:
            raise InvalidDeliveryState(
                f"the endpoint of delivery {delivery_id!r} was deleted", status=row.status
            )
        if row.status != DeliveryStatus.PENDING:
            conn.execute(
                update(d)
                .where(d.c.id == delivery_id)
                .values(status=str(DeliveryStatus.PENDING), failed_at=None, updated_at=utc_now())
            )
        notify(conn, [(row.endpoint_id, row.seller_id)])
        return self.get_delivery(conn, delivery_id)

    # ---------------------------------------------------------------- for the delivery activities

    def pending_deliveries(
        self, conn: Connection, endpoint_id: str, seller_id: str, *, limit: int = 100
    ) -> list[str]:
        """The stream's pending delivery ids, in sequence order."""
        d = webhook_deliveries
        return list(
            conn.execute(
                select(d.c.id)
                .where(
                    d.c.endpoint_id == endpoint_id,
                    d.c.seller_id == seller_id,
                    d.c.status == str(DeliveryStatus.PENDING),
                )
                .order_by(d.c.sequence, d.c.id)
                .limit(limit)
            ).scalars()
        )

    def delivery_request(self, conn: Connection, delivery_id: str) -> DeliveryRequest | None:
        """The next attempt of a pending delivery; None if it is no longer pending (sent,
        failed, cancelled)."""
        d, e, w = webhook_deliveries, events, webhook_endpoints
        row = conn.execute(
            select(d.c.id, d.c.status, d.c.attempts, w.c.url, w.c.secret, *e.c)
            .join(e, e.c.id == d.c.event_id)
            .join(w, w.c.id == d.c.endpoint_id)
            .where(d.c.id == delivery_id)
        ).one_or_none()
        if row is None:
            raise delivery_not_found(delivery_id)
        if row.status != DeliveryStatus.PENDING:
            return None
        event = event_from_row(row)
        return DeliveryRequest(
            delivery_id=delivery_id,
            event_id=event.id,
            event_type=event.type,
            url=row.url,
            secret=row.secret,
            body=event.body(),
            attempt=row.attempts + 1,
        )

    def record_attempt(
        self,
        conn: Connection,
        delivery_id: str,
        *,
        attempted_at: datetime,
        response_status: int | None,
        error: str | None,
        duration_ms: int,
        succeeded: bool,
    ) -> WebhookDelivery:
        """Record one attempt; a success marks the delivery ``succeeded``."""
        d = webhook_deliveries
        row = conn.execute(
            select(d.c.attempts, d.c.status).where(d.c.id == delivery_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise delivery_not_found(delivery_id)
        attempt = row.attempts + 1
        conn.execute(
            webhook_delivery_attempts.insert().values(
                delivery_id=delivery_id,
                attempt=attempt,
                attempted_at=attempted_at,
                response_status=response_status,
                error=None if error is None else error[:1000],
                duration_ms=duration_ms,
            )
        )
        values: dict[str, Any] = {
            "attempts": attempt,
            "last_attempt_at": attempted_at,
            "last_response_status": response_status,
            "last_error": None if error is None else error[:1000],
            "updated_at": utc_now(),
        }
        if succeeded and row.status == DeliveryStatus.PENDING:
            values.update(status=str(DeliveryStatus.SUCCEEDED), succeeded_at=utc_now())
        conn.execute(update(d).where(d.c.id == delivery_id).values(**values))
        return self.get_delivery(conn, delivery_id)

    def mark_failed(self, conn: Connection, delivery_id: str, reason: str) -> WebhookDelivery:
        """Retries are exhausted: ``failed`` (visible, re-sendable). Only a pending delivery
        changes."""
        d = webhook_deliveries
        now = utc_now()
        conn.execute(
            update(d)
            .where(d.c.id == delivery_id, d.c.status == str(DeliveryStatus.PENDING))
            .values(
                status=str(DeliveryStatus.FAILED),
                failed_at=now,
                last_error=(reason or "retries exhausted")[:1000],
                updated_at=now,
            )
        )
        return self.get_delivery(conn, delivery_id)

    def streams_with_pending(
        self, conn: Connection, *, idle_seconds: float, limit: int = 1000
    ) -> list[tuple[str, str]]:
        """(endpoint id, seller id) of streams with a pending delivery untouched for
        ``idle_seconds``: the sweeper wakes their workflows in case a notification was lost."""
        rows = conn.execute(
            text(
                """
SELECT DISTINCT endpoint_id, seller_id FROM webhook_deliveries
WHERE status = 'pending' AND updated_at < now() - make_interval(secs => :idle)
LIMIT :limit
"""
            ),
            {"idle": idle_seconds, "limit": limit},
        ).all()
        return [(r.endpoint_id, r.seller_id) for r in rows]


def notify(conn: Connection, streams: Iterable[tuple[str, str]]) -> None:
    """Tell the dispatcher (at commit) that these (endpoint, seller) streams have work."""
    for endpoint_id, seller_id in set(streams):
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": NOTIFY_CHANNEL, "payload": f"{endpoint_id} {seller_id}"},
        )


def endpoint_not_found(endpoint_id: str) -> WebhookEndpointNotFound:
    return WebhookEndpointNotFound(
        f"webhook endpoint {endpoint_id!r} not found", resource="webhook_endpoint"
    )


def delivery_not_found(delivery_id: str) -> WebhookDeliveryNotFound:
    return WebhookDeliveryNotFound(
        f"webhook delivery {delivery_id!r} not found", resource="webhook_delivery"
    )


def _endpoint(row: Row[Any]) -> WebhookEndpoint:
    return from_row(WebhookEndpoint, row, event_types=tuple(row.event_types))


def _delivery_query() -> Any:
    return select(webhook_deliveries, events.c.type.label("event_type"), events.c.livemode).join(
        events, events.c.id == webhook_deliveries.c.event_id
    )


def _delivery(row: Row[Any]) -> WebhookDelivery:
    return from_row(WebhookDelivery, row, status=DeliveryStatus(row.status))
