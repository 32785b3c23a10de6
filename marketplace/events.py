"""Events and webhooks to subscribers: a transactional outbox on PostgreSQL.

``record_event`` writes an event in the caller's database transaction, the one that makes the
change the event tells of, so an event exists exactly when its change committed (never for a
rolled-back change, never lost after a committed one). Events are numbered per seller
(``sequence``; the ``event_streams`` row lock makes sequence order the commit order) and fanned
out, in the same statement, to one pending delivery per webhook endpoint subscribed to the type.
A ``pg_notify('webhook_deliveries', '<endpoint id> <seller id>')`` tells the worker's dispatcher
at commit which delivery streams have work; it starts their delivery workflows, which send the
deliveries in sequence, signed (``signatures``), retried with back-off (activities.webhooks).

``balance.available_changed`` is recorded by ``record_available_change`` when a seller's
available balance differs from the last one reported (kept on the stream row), so a change that
moves money but not the available balance (a payout paid, an earning booked) sends none.

Both run now or with the commit of the caller's transaction (``ledger_core.deferred``), so that a
hot path (booking, releasing holds) keeps its stream locks only while the server works.

The ``Webhooks`` class is the rest: endpoints (create with a secret shown once, list, delete),
events and deliveries to list, a delivery's attempts, re-sending, and what the delivery
activities need (the next pending deliveries of a stream, the signed request of one, recording an
attempt's outcome).
"""

from __future__ import annotations

import enum
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, text, update
from sqlalchemy.engine import Row

from ledger_core.deferred import Statement, run
from ledger_core.errors import InvalidStateTransition, NotFound, ValidationFailed
from marketplace.tables import (
    events,
    webhook_deliveries,
    webhook_delivery_attempts,
    webhook_endpoints,
)
from marketplace.types import Dispute, Earning, Page

__all__ = [
    "EVENT_TYPES",
    "NOTIFY_CHANNEL",
    "DeliveryAttempt",
    "DeliveryRequest",
    "DeliveryStatus",
    "Event",
    "EventNotFound",
    "EventType",
    "InvalidDeliveryState",
    "NewEvent",
    "WebhookDelivery",
    "WebhookDeliveryNotFound",
    "WebhookEndpoint",
    "WebhookEndpointNotFound",
    "Webhooks",
    "dispute_object",
    "earning_object",
    "record_available_change",
    "record_event",
    "record_events",
]


class EventType(enum.StrEnum):
    EARNING_CREATED = "earning.created"
    EARNING_POSTED = "earning.posted"
    EARNING_REFUNDED = "earning.refunded"
    EARNING_CANCELLED = "earning.cancelled"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_WON = "dispute.won"
    DISPUTE_LOST = "dispute.lost"
    PAYOUT_CREATED = "payout.created"
    PAYOUT_PAID = "payout.paid"
    PAYOUT_FAILED = "payout.failed"
    PAYOUT_RETURNED = "payout.returned"
    PAYOUT_CANCELLED = "payout.cancelled"
    BALANCE_AVAILABLE_CHANGED = "balance.available_changed"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
ALL_EVENTS = "*"
NOTIFY_CHANNEL = "webhook_deliveries"
MAX_PAGE = 1000
MAX_URL = 2048
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """The endpoint was deleted before the delivery was sent."""


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class EventNotFound(NotFound):
    code = "event_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


class InvalidDeliveryState(InvalidStateTransition):
    code = "invalid_delivery_state"


# -------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    seller_id: str
    sequence: int
    """1, 2, 3 ... per seller, in the order the changes committed."""
    type: str
    data: dict[str, Any]
    created_at: datetime
    position: int
    """Global order (the list cursor)."""

    def payload(self) -> dict[str, Any]:
        """What a subscriber receives (and ``GET /v1/events`` returns)."""
        return {
            "id": self.id,
            "object": "event",
            "type": self.type,
            "seller_id": self.seller_id,
            "sequence": self.sequence,
            "created_at": _iso(self.created_at),
            "data": self.data,
        }

    def body(self) -> bytes:
        """The delivery body: the same bytes on every attempt."""
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":")).encode()


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


# -------------------------------------------------------------------- recording

# Events of several sellers in one statement (marketplace_record_events, in the 0006 migration):
# each seller's stream moves on by its number of events (the row lock orders a seller's events:
# sequence order is commit order), the events get consecutive sequences in input order, and every
# subscribed endpoint one pending delivery; one notification per delivery stream.
_RECORD = "SELECT marketplace_record_events(%s::jsonb, %s)"
# A credit-normal seller account's views (DESIGN.md); the previous available is what the stream
# last reported (0 before any). The caller's writes locked the account, so a seller's balance
# events are serialised and each compares with the one before.
_AVAILABLE_CHANGED = """
SELECT 1 AS ord, %s::text AS id, b.seller_id, 'balance.available_changed'::text AS type,
       jsonb_build_object('object', jsonb_build_object(
           'object', 'balance', 'seller_id', b.seller_id, 'currency', b.currency,
           'available', b.available, 'previous_available', b.before, 'pending', b.pending,
           'posted', b.posted)) AS data,
       b.available
  FROM (SELECT %s::text AS seller_id, %s::text AS currency,
               a.posted_credits - (a.pending_debits + a.posted_debits) AS available,
               (a.pending_credits + a.posted_credits) - (a.pending_debits + a.posted_debits)
                   AS pending,
               a.posted_credits - a.posted_debits AS posted,
               coalesce((SELECT last_available FROM event_streams WHERE seller_id = %s), 0)
                   AS before
          FROM ledger_accounts a WHERE a.id = %s) b
 WHERE b.available <> b.before
"""
# Constant text: the subquery is this module's own SQL, the values are parameters.
_RECORD_AVAILABLE_CHANGED = f"""
SELECT marketplace_record_events(
    coalesce((SELECT jsonb_agg(to_jsonb(changed)) FROM ({_AVAILABLE_CHANGED}) changed),
             '[]'::jsonb),
    %s)
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class NewEvent:
    seller_id: str
    type: EventType
    data: dict[str, Any]


def new_event_id() -> str:
    """``evt_`` + 12 hex digits of milliseconds + 20 random: unique, and sortable by time."""
    return f"evt_{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def record_events(
    conn: Connection, new: Sequence[NewEvent], *, at_commit: bool = False
) -> list[str]:
    """Write events in the caller's transaction (now, or with its commit: ledger_core.deferred)
    and fan them out to the subscribed endpoints, in one statement; returns their ids."""
    if not new:
        return []
    ids = [new_event_id() for _ in new]
    rows = [
        {
            "ord": i,
            "id": event_id,
            "seller_id": e.seller_id,
            "type": str(EventType(e.type)),
            "data": e.data,
        }
        for i, (event_id, e) in enumerate(zip(ids, new, strict=True))
    ]
    data = json.dumps(rows, default=_json_default, separators=(",", ":"))
    run(conn, Statement(_RECORD, (data, _now())), at_commit=at_commit)
    return ids


def record_event(
    conn: Connection, seller_id: str, type: EventType | str, data: dict[str, Any]
) -> str:
    """Write one event of ``seller_id`` now (see ``record_events``); returns its id."""
    return record_events(conn, [NewEvent(seller_id, EventType(type), data)])[0]


def record_available_change(
    conn: Connection,
    *,
    seller_id: str,
    account_id: uuid.UUID,
    currency: str,
    at_commit: bool = False,
) -> None:
    """Record ``balance.available_changed`` if the seller's available balance (read from its
    ledger account, ``account_id``) differs from the last one reported for the seller (0 before
    the first). Call it after the change, in its transaction."""
    run(
        conn,
        Statement(
            _RECORD_AVAILABLE_CHANGED,
            (new_event_id(), seller_id, currency, seller_id, account_id, _now()),
        ),
        at_commit=at_commit,
    )


def earning_object(e: Earning) -> dict[str, Any]:
    """An earning as ``GET /v1/sellers/{id}/earnings/{order}`` shows it."""
    return {
        "object": "earning",
        "order_id": e.order_id,
        "seller_id": e.seller_id,
        "currency": e.currency,
        "amount": e.amount,
        "fee": e.fee,
        "net": e.net,
        "status": str(e.status),
        "hold_until": _iso(e.hold_until),
        "posted_at": _iso(e.posted_at),
        "cancelled_at": _iso(e.cancelled_at),
        "ledger_transaction_id": str(e.ledger_transaction_id),
        "reserve_amount": e.reserve_amount,
        "reserve_release_at": _iso(e.reserve_release_at),
        "reserve_released_at": _iso(e.reserve_released_at),
        "metadata": e.metadata,
    }


def dispute_object(d: Dispute) -> dict[str, Any]:
    """A dispute as ``GET /v1/disputes/{id}`` shows it."""
    return {
        "object": "dispute",
        "id": d.id,
        "seller_id": d.seller_id,
        "order_id": d.order_id,
        "currency": d.currency,
        "amount": d.amount,
        "reason": d.reason,
        "status": str(d.status),
        "deadline": _iso(d.deadline),
        "resolved_at": _iso(d.resolved_at),
        "ledger_transaction_id": str(d.ledger_transaction_id),
        "workflow_id": f"dispute/{d.id}",
        "metadata": d.metadata,
    }


# -------------------------------------------------------------------- endpoints and deliveries


class Webhooks:
    """Webhook endpoints, events, deliveries. Every method takes a ``Connection`` inside a
    transaction the caller owns and never commits."""

    # ---------------------------------------------------------------- endpoints

    def create_endpoint(
        self,
        conn: Connection,
        *,
        url: str,
        event_types: Sequence[str],
        description: str = "",
    ) -> WebhookEndpoint:
        """A new endpoint with a fresh secret (``whsec_``...), subscribed to ``event_types``
        (``["*"]``: all). It receives the events recorded from now on."""
        if not isinstance(url, str) or len(url) > MAX_URL or not _URL.match(url):
            raise ValidationFailed(
                f"url must be an http:// or https:// URL of at most {MAX_URL} characters",
                field="url",
            )
        types = _check_event_types(event_types)
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
                created_at=_now(),
            )
            .returning(*webhook_endpoints.c)
        ).one()
        return _endpoint(row)

    def get_endpoint(self, conn: Connection, endpoint_id: str) -> WebhookEndpoint:
        row = conn.execute(
            select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        ).one_or_none()
        if row is None:
            raise WebhookEndpointNotFound(
                f"webhook endpoint {endpoint_id!r} not found", resource="webhook_endpoint"
            )
        return _endpoint(row)

    def list_endpoints(
        self,
        conn: Connection,
        *,
        include_deleted: bool = False,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[WebhookEndpoint]:
        _check_limit(limit)
        query = select(webhook_endpoints)
        if not include_deleted:
            query = query.where(webhook_endpoints.c.deleted_at.is_(None))
        if after is not None:
            query = query.where(webhook_endpoints.c.id > after)
        rows = conn.execute(query.order_by(webhook_endpoints.c.id).limit(limit + 1)).all()
        return _page([_endpoint(r) for r in rows], limit, lambda e: e.id)

    def delete_endpoint(self, conn: Connection, endpoint_id: str) -> WebhookEndpoint:
        """Stop sending to the endpoint: no new deliveries, pending ones cancelled. Its
        deliveries stay listed. Deleting a deleted endpoint is a no-op."""
        row = conn.execute(
            select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise WebhookEndpointNotFound(
                f"webhook endpoint {endpoint_id!r} not found", resource="webhook_endpoint"
            )
        if row.deleted_at is not None:
            return _endpoint(row)
        now = _now()
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

    # ---------------------------------------------------------------- events

    def get_event(self, conn: Connection, event_id: str) -> Event:
        row = conn.execute(select(events).where(events.c.id == event_id)).one_or_none()
        if row is None:
            raise EventNotFound(f"event {event_id!r} not found", resource="event")
        return _event(row)

    def list_events(
        self,
        conn: Connection,
        *,
        seller_id: str | None = None,
        types: Iterable[str] = (),
        after: int | None = None,
        limit: int = 25,
    ) -> Page[Event]:
        """Events oldest first; ``after`` is a position (the previous page's ``next_after``), so
        a reader that keeps its cursor sees every event once, new ones as they commit."""
        _check_limit(limit)
        query = select(events)
        if seller_id is not None:
            query = query.where(events.c.seller_id == seller_id)
        wanted = _check_event_types(tuple(types), allow_all=False) if types else ()
        if wanted:
            query = query.where(events.c.type.in_(wanted))
        if after is not None:
            query = query.where(events.c.position > after)
        rows = conn.execute(query.order_by(events.c.position).limit(limit + 1)).all()
        return _page([_event(r) for r in rows], limit, lambda e: str(e.position))

    # ---------------------------------------------------------------- deliveries

    def get_delivery(self, conn: Connection, delivery_id: str) -> WebhookDelivery:
        row = conn.execute(
            _delivery_query().where(webhook_deliveries.c.id == delivery_id)
        ).one_or_none()
        if row is None:
            raise WebhookDeliveryNotFound(
                f"webhook delivery {delivery_id!r} not found", resource="webhook_delivery"
            )
        return _delivery(row)

    def list_deliveries(
        self,
        conn: Connection,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        seller_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[WebhookDelivery]:
        """Deliveries oldest first (ids sort by creation time)."""
        _check_limit(limit)
        d = webhook_deliveries
        query = _delivery_query()
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
        if after is not None:
            query = query.where(d.c.id > after)
        rows = conn.execute(query.order_by(d.c.id).limit(limit + 1)).all()
        return _page([_delivery(r) for r in rows], limit, lambda x: x.id)

    def list_attempts(self, conn: Connection, delivery_id: str) -> list[DeliveryAttempt]:
        self.get_delivery(conn, delivery_id)
        a = webhook_delivery_attempts
        rows = conn.execute(
            select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.attempt)
        ).all()
        return [
            DeliveryAttempt(
                delivery_id=r.delivery_id,
                attempt=r.attempt,
                attempted_at=r.attempted_at,
                response_status=r.response_status,
                error=r.error,
                duration_ms=r.duration_ms,
            )
            for r in rows
        ]

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
            raise WebhookDeliveryNotFound(
                f"webhook delivery {delivery_id!r} not found", resource="webhook_delivery"
            )
        if row.deleted_at is not None:
            raise InvalidDeliveryState(
                f"the endpoint of delivery {delivery_id!r} was deleted", status=row.status
            )
        if row.status != DeliveryStatus.PENDING:
            conn.execute(
                update(d)
                .where(d.c.id == delivery_id)
                .values(status=str(DeliveryStatus.PENDING), failed_at=None, updated_at=_now())
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
            raise WebhookDeliveryNotFound(
                f"webhook delivery {delivery_id!r} not found", resource="webhook_delivery"
            )
        if row.status != DeliveryStatus.PENDING:
            return None
        event = _event(row)
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
            raise WebhookDeliveryNotFound(
                f"webhook delivery {delivery_id!r} not found", resource="webhook_delivery"
            )
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
            "updated_at": _now(),
        }
        if succeeded and row.status == DeliveryStatus.PENDING:
            values.update(status=str(DeliveryStatus.SUCCEEDED), succeeded_at=_now())
        conn.execute(update(d).where(d.c.id == delivery_id).values(**values))
        return self.get_delivery(conn, delivery_id)

    def mark_failed(self, conn: Connection, delivery_id: str, reason: str) -> WebhookDelivery:
        """Retries are exhausted: ``failed`` (visible, re-sendable). Only a pending delivery
        changes."""
        d = webhook_deliveries
        now = _now()
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


# -------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"per_page must be between 1 and {MAX_PAGE}", field="per_page")


def _check_event_types(types: Sequence[str], *, allow_all: bool = True) -> tuple[str, ...]:
    known = set(EVENT_TYPES) | ({ALL_EVENTS} if allow_all else set())
    if isinstance(types, str) or not types:
        raise ValidationFailed("event_types must be a non-empty list", field="event_types")
    unknown = [t for t in types if t not in known]
    if unknown:
        raise ValidationFailed(
            f"unknown event type(s) {', '.join(map(str, unknown))}; known: "
            + ", ".join(sorted(known)),
            field="event_types",
        )
    return tuple(dict.fromkeys(types))


def _page(items: list[Any], limit: int, key: Any) -> Page[Any]:
    more = len(items) > limit
    items = items[:limit]
    return Page(items=items, next_after=key(items[-1]) if more else None)


def _endpoint(row: Row[Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=tuple(row.event_types),
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        secret=row.secret,
    )


def _event(row: Row[Any]) -> Event:
    return Event(
        id=row.id,
        seller_id=row.seller_id,
        sequence=row.sequence,
        type=row.type,
        data=row.data,
        created_at=row.created_at,
        position=row.position,
    )


def _delivery_query() -> Any:
    return select(webhook_deliveries, events.c.type.label("event_type")).join(
        events, events.c.id == webhook_deliveries.c.event_id
    )


def _delivery(row: Row[Any]) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        endpoint_id=row.endpoint_id,
        seller_id=row.seller_id,
        sequence=row.sequence,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        last_attempt_at=row.last_attempt_at,
        last_response_status=row.last_response_status,
        last_error=row.last_error,
        succeeded_at=row.succeeded_at,
        failed_at=row.failed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
