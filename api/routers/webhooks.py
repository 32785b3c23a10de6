"""Webhooks to subscribers: ``/v1/webhook_endpoints``, ``/v1/events`` and
``/v1/webhook_deliveries`` (marketplace.events and marketplace.webhooks; delivery by the worker's
delivery workflows).

Admin keys create and delete endpoints; the secret that signs the deliveries is in the creation's
response only. Platform keys (admin, operator) list endpoints and deliveries and re-send a
delivery. Every key lists events; a seller key sees its own seller's only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate_keyed
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas import ListResponse, RequestModel
from api.scoping import AdminAccess, AnyRole, PlatformAccess, is_seller_key
from marketplace.errors import EventNotFound
from marketplace.events import EVENT_TYPES, Event, Events
from marketplace.webhooks import DeliveryAttempt, WebhookDelivery, WebhookEndpoint, Webhooks

router = APIRouter(tags=["webhooks"], route_class=ApiRoute)
webhooks = Webhooks()
events = Events()

EventTypeName = Literal[
    "earning.created",
    "earning.posted",
    "earning.refunded",
    "earning.cancelled",
    "dispute.opened",
    "dispute.won",
    "dispute.lost",
    "payout.created",
    "payout.paid",
    "payout.failed",
    "payout.returned",
    "payout.cancelled",
    "balance.available_changed",
]
assert set(get_args(EventTypeName)) == set(EVENT_TYPES)


class WebhookEndpointCreate(RequestModel):
    url: str = Field(
        max_length=2048,
        pattern=r"^https?://[^\s/?#]+[^\s]*$",
        description="Where deliveries are POSTed (http or https).",
    )
    event_types: list[EventTypeName | Literal["*"]] = Field(
        min_length=1, max_length=20, description='Event types to receive; ["*"] for all.'
    )
    description: str = Field(default="", max_length=1000)


class WebhookEndpointOut(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    description: str
    event_types: list[str]
    status: Literal["enabled", "deleted"]
    created_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, e: WebhookEndpoint) -> WebhookEndpointOut:
        return cls(
            id=e.id,
            url=e.url,
            description=e.description,
            event_types=list(e.event_types),
            status="deleted" if e.deleted_at else "enabled",
            created_at=e.created_at,
            deleted_at=e.deleted_at,
        )


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(
        description="Verifies the Payouts-Signature header of every delivery. Shown only now: "
        "store it."
    )


class EventOut(BaseModel):
    id: str
    object: Literal["event"] = "event"
    type: str
    seller_id: str
    sequence: int = Field(description="1, 2, 3 ... per seller, in the order the changes happened.")
    created_at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls(
            id=e.id,
            type=e.type,
            seller_id=e.seller_id,
            sequence=e.sequence,
            created_at=e.created_at,
            data=e.data,
        )


class DeliveryAttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int

    @classmethod
    def of(cls, a: DeliveryAttempt) -> DeliveryAttemptOut:
        return cls(
            attempt=a.attempt,
            attempted_at=a.attempted_at,
            response_status=a.response_status,
            error=a.error,
            duration_ms=a.duration_ms,
        )


class WebhookDeliveryOut(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event_id: str
    event_type: str
    endpoint_id: str
    seller_id: str
    sequence: int
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    attempts: int
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    succeeded_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    workflow_id: str = Field(description="The delivery workflow of this endpoint and seller.")

    @classmethod
    def of(cls, d: WebhookDelivery) -> WebhookDeliveryOut:
        return cls(
            id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            endpoint_id=d.endpoint_id,
            seller_id=d.seller_id,
            sequence=d.sequence,
            status=d.status.value,
            attempts=d.attempts,
            last_attempt_at=d.last_attempt_at,
            last_response_status=d.last_response_status,
            last_error=d.last_error,
            succeeded_at=d.succeeded_at,
            failed_at=d.failed_at,
            created_at=d.created_at,
            workflow_id=f"webhook-delivery/{d.endpoint_id}/{d.seller_id}",
        )


class WebhookDeliveryDetail(WebhookDeliveryOut):
    attempt_history: list[DeliveryAttemptOut]


# ------------------------------------------------------------------ endpoints


@router.post("/v1/webhook_endpoints", status_code=201, dependencies=[AdminAccess])
def create_webhook_endpoint(
    body: WebhookEndpointCreate, conn: DbConnection
) -> WebhookEndpointCreated:
    """Subscribe a URL to event types. Deliveries are signed with the returned ``secret``
    (shown only in this response): header ``Payouts-Signature: t=<unix seconds>,v1=<hex
    HMAC-SHA256 of "<t>.<raw body>">``."""
    endpoint = webhooks.create_endpoint(
        conn, url=body.url, event_types=list(body.event_types), description=body.description
    )
    return WebhookEndpointCreated(
        **WebhookEndpointOut.of(endpoint).model_dump(), secret=endpoint.secret
    )


@router.get("/v1/webhook_endpoints", dependencies=[PlatformAccess])
def list_webhook_endpoints(
    conn: DbConnection,
    response: Response,
    include_deleted: bool = False,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[WebhookEndpointOut]:
    page = webhooks.list_endpoints(
        conn,
        include_deleted=include_deleted,
        after=decode_key_cursor("webhook_endpoints", after_cursor),
        limit=per_page,
    )
    return paginate_keyed(response, "webhook_endpoints", page, per_page, WebhookEndpointOut.of)


@router.get("/v1/webhook_endpoints/{endpoint_id}", dependencies=[PlatformAccess])
def get_webhook_endpoint(endpoint_id: str, conn: DbConnection) -> WebhookEndpointOut:
    return WebhookEndpointOut.of(webhooks.get_endpoint(conn, endpoint_id))


@router.delete("/v1/webhook_endpoints/{endpoint_id}", dependencies=[AdminAccess])
def delete_webhook_endpoint(endpoint_id: str, conn: DbConnection) -> WebhookEndpointOut:
    """Stop sending to the endpoint: its pending deliveries are cancelled; its deliveries stay
    listed. Deleting it again answers the same."""
    return WebhookEndpointOut.of(webhooks.delete_endpoint(conn, endpoint_id))


# ------------------------------------------------------------------ events


@router.get("/v1/events", dependencies=[AnyRole])
def list_events(
    conn: DbConnection,
    principal: CurrentPrincipal,
    response: Response,
    seller_id: str | None = None,
    type: Annotated[list[EventTypeName] | None, Query(max_length=20)] = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[EventOut]:
    """Events oldest first. Keep the last ``next_cursor`` (or build on the last page's) to read
    new events as they happen; ``type`` may repeat. A seller key sees its own seller's only."""
    if is_seller_key(principal):
        if seller_id is not None and seller_id != principal.seller_id:
            raise Problem(404, "seller_not_found", f"seller {seller_id!r} not found")
        seller_id = principal.seller_id
    after = decode_key_cursor("events", after_cursor)
    if after is not None and not after.isdigit():
        raise Problem(422, "invalid_cursor", "after_cursor is not a cursor of this list.")
    page = events.list_events(
        conn,
        seller_id=seller_id,
        types=type or (),
        after=int(after) if after is not None else None,
        limit=per_page,
    )
    return paginate_keyed(response, "events", page, per_page, EventOut.of)


@router.get("/v1/events/{event_id}", dependencies=[AnyRole])
def get_event(event_id: str, conn: DbConnection, principal: CurrentPrincipal) -> EventOut:
    event = events.get_event(conn, event_id)
    if is_seller_key(principal) and principal.seller_id != event.seller_id:
        raise EventNotFound(f"event {event_id!r} not found", resource="event")
    return EventOut.of(event)


# ------------------------------------------------------------------ deliveries


@router.get("/v1/webhook_deliveries", dependencies=[PlatformAccess])
def list_webhook_deliveries(
    conn: DbConnection,
    response: Response,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    seller_id: str | None = None,
    status: Literal["pending", "succeeded", "failed", "cancelled"] | None = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[WebhookDeliveryOut]:
    """Deliveries oldest first; ``status=failed`` lists what to re-send."""
    page = webhooks.list_deliveries(
        conn,
        endpoint_id=endpoint_id,
        event_id=event_id,
        seller_id=seller_id,
        status=status,
        after=decode_key_cursor("webhook_deliveries", after_cursor),
        limit=per_page,
    )
    return paginate_keyed(response, "webhook_deliveries", page, per_page, WebhookDeliveryOut.of)


@router.get("/v1/webhook_deliveries/{delivery_id}", dependencies=[PlatformAccess])
def get_webhook_delivery(delivery_id: str, conn: DbConnection) -> WebhookDeliveryDetail:
    """A delivery with every attempt (response status or error, duration)."""
    delivery = webhooks.get_delivery(conn, delivery_id)
    attempts = webhooks.list_attempts(conn, delivery_id)
    return WebhookDeliveryDetail(
        **WebhookDeliveryOut.of(delivery).model_dump(),
        attempt_history=[DeliveryAttemptOut.of(a) for a in attempts],
    )


@router.post("/v1/webhook_deliveries/{delivery_id}/resend", dependencies=[PlatformAccess])
def resend_webhook_delivery(delivery_id: str, conn: DbConnection) -> WebhookDeliveryOut:
    """Send a delivery again (a failed one, or one the receiver lost): back to ``pending``; the
    endpoint's delivery workflow for the seller picks it up. 409 ``invalid_delivery_state`` if
    the endpoint was deleted."""
    return WebhookDeliveryOut.of(webhooks.resend(conn, delivery_id))
