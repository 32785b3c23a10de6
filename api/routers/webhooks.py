"""Webhooks to subscribers: ``/v1/webhook_endpoints``, ``/v1/events`` and
``/v1/webhook_deliveries`` (marketplace.events and marketplace.webhooks; delivery by the worker's
delivery workflows).

Admin keys create and delete endpoints; the secret that signs the deliveries is in the creation's
response only. Platform keys (admin, operator) list endpoints and deliveries and re-send a
delivery. Every key lists events; a seller key sees its own seller's only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.modes import KeyMode
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate
from api.problems import Problem
from api.routing import ApiRoute
from api.schemas.common import Attributes, ListResponse
from api.schemas.webhooks import (
    EventOut,
    EventTypeName,
    WebhookDeliveryDetail,
    WebhookDeliveryOut,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointOut,
)
from api.scoping import (
    AdminAccess,
    AnyRole,
    PlatformAccess,
    check_visible,
    is_seller_key,
    visible_seller,
)
from marketplace.errors import event_not_found, wallet_not_found
from marketplace.events import Events, wallet_stream
from marketplace.webhooks import Webhooks

router = APIRouter(tags=["webhooks"], route_class=ApiRoute)
webhooks = Webhooks()
events = Events()


# ------------------------------------------------------------------ endpoints


@router.post("/v1/webhook_endpoints", status_code=201, dependencies=[AdminAccess])
def create_webhook_endpoint(
    body: WebhookEndpointCreate, conn: DbConnection, livemode: KeyMode
) -> WebhookEndpointCreated:
    """Subscribe a URL to event types. Deliveries are signed with the returned ``secret``
    (shown only in this response): header ``Payouts-Signature: t=<unix seconds>,v1=<hex
    HMAC-SHA256 of "<t>.<raw body>">``. The endpoint is of the key's mode and receives the
    events of that mode only (a test key's endpoint: test-mode events)."""
    endpoint = webhooks.create_endpoint(
        conn,
        url=body.url,
        event_types=list(body.event_types),
        description=body.description,
        livemode=livemode,
    )
    return WebhookEndpointCreated.model_validate(endpoint)


@router.get("/v1/webhook_endpoints", dependencies=[PlatformAccess])
def list_webhook_endpoints(
    conn: DbConnection,
    response: Response,
    livemode: KeyMode,
    include_deleted: bool = False,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[WebhookEndpointOut]:
    page = webhooks.list_endpoints(
        conn,
        include_deleted=include_deleted,
        livemode=livemode,
        after=decode_key_cursor("webhook_endpoints", after_cursor),
        limit=per_page,
    )
    return paginate(response, "webhook_endpoints", page, per_page, WebhookEndpointOut)


@router.get("/v1/webhook_endpoints/{endpoint_id}", dependencies=[PlatformAccess])
def get_webhook_endpoint(endpoint_id: str, conn: DbConnection) -> WebhookEndpointOut:
    return WebhookEndpointOut.model_validate(webhooks.get_endpoint(conn, endpoint_id))


@router.delete("/v1/webhook_endpoints/{endpoint_id}", dependencies=[AdminAccess])
def delete_webhook_endpoint(endpoint_id: str, conn: DbConnection) -> WebhookEndpointOut:
    """Stop sending to the endpoint: its pending deliveries are cancelled; its deliveries stay
    listed. Deleting it again answers the same."""
    return WebhookEndpointOut.model_validate(webhooks.delete_endpoint(conn, endpoint_id))


# ------------------------------------------------------------------ events


@router.get("/v1/events", dependencies=[AnyRole])
def list_events(
    conn: DbConnection,
    principal: CurrentPrincipal,
    response: Response,
    livemode: KeyMode,
    seller_id: str | None = None,
    wallet_id: str | None = None,
    type: Annotated[list[EventTypeName] | None, Query(max_length=20)] = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[EventOut]:
    """Events oldest first. Keep the last ``next_cursor`` (or build on the last page's) to read
    new events as they happen; ``type`` may repeat; ``seller_id`` or ``wallet_id`` keeps one
    seller's or wallet's. A seller key sees its own seller's only."""
    if wallet_id is not None:
        if seller_id is not None:
            raise Problem(422, "validation_failed", "Filter by seller_id or wallet_id, not both.")
        if is_seller_key(principal):  # a seller key sees no wallet
            raise wallet_not_found(wallet_id)
        seller_id = wallet_stream(wallet_id)
    seller_id = visible_seller(principal, seller_id)
    after = decode_key_cursor("events", after_cursor)
    if after is not None and not after.isdigit():
        raise Problem(422, "invalid_cursor", "after_cursor is not a cursor of this list.")
    page = events.list_events(
        conn,
        seller_id=seller_id,
        types=type or (),
        livemode=livemode,
        after=int(after) if after is not None else None,
        limit=per_page,
    )
    return paginate(response, "events", page, per_page, EventOut)


@router.get("/v1/events/{event_id}", dependencies=[AnyRole])
def get_event(event_id: str, conn: DbConnection, principal: CurrentPrincipal) -> EventOut:
    event = events.get_event(conn, event_id)
    check_visible(principal, event.seller_id, event_not_found(event_id))
    return EventOut.model_validate(event)


# ------------------------------------------------------------------ deliveries


@router.get("/v1/webhook_deliveries", dependencies=[PlatformAccess])
def list_webhook_deliveries(
    conn: DbConnection,
    response: Response,
    livemode: KeyMode,
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
        livemode=livemode,
        after=decode_key_cursor("webhook_deliveries", after_cursor),
        limit=per_page,
    )
    return paginate(response, "webhook_deliveries", page, per_page, WebhookDeliveryOut)


@router.get("/v1/webhook_deliveries/{delivery_id}", dependencies=[PlatformAccess])
def get_webhook_delivery(delivery_id: str, conn: DbConnection) -> WebhookDeliveryDetail:
    """A delivery with every attempt (response status or error, duration)."""
    delivery = webhooks.get_delivery(conn, delivery_id)
    attempts = webhooks.list_attempts(conn, delivery_id)
    return WebhookDeliveryDetail.model_validate(Attributes(delivery, attempt_history=attempts))


@router.post("/v1/webhook_deliveries/{delivery_id}/resend", dependencies=[PlatformAccess])
def resend_webhook_delivery(delivery_id: str, conn: DbConnection) -> WebhookDeliveryOut:
    """Send a delivery again (a failed one, or one the receiver lost): back to ``pending``; the
    endpoint's delivery workflow for the seller picks it up. 409 ``invalid_delivery_state`` if
    the endpoint was deleted."""
    return WebhookDeliveryOut.model_validate(webhooks.resend(conn, delivery_id))
