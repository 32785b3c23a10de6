"""``/v1/webhook_endpoints``, ``/v1/events`` and ``/v1/webhook_deliveries``: subscriptions, the
events sent and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from api.schemas.common import RequestModel
from marketplace.events import EVENT_TYPES, DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint

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
