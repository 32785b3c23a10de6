"""``/v1/webhook_endpoints``, ``/v1/events`` and ``/v1/webhook_deliveries``: subscriptions, the
events sent and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field

from api.schemas.common import Attributes, ObjectOut, RequestModel, ResponseModel, as_text
from marketplace.events import EVENT_TYPES

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
    "wallet.created",
    "wallet.top_up.pending",
    "wallet.top_up.settled",
    "wallet.top_up.failed",
    "wallet.top_up.expiry_changed",
    "wallet.spent",
    "wallet.spend.refunded",
    "wallet.transfer",
    "wallet.expired",
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


class WebhookEndpointOut(ObjectOut):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    description: str
    event_types: list[str]
    status: Literal["enabled", "deleted"]
    created_at: datetime
    deleted_at: datetime | None

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        return Attributes(data, status="deleted" if data.deleted_at else "enabled")


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(
        description="Verifies the Payouts-Signature header of every delivery. Shown only now: "
        "store it."
    )


class EventOut(ObjectOut):
    id: str
    object: Literal["event"] = "event"
    type: str
    seller_id: str | None = Field(description="The seller whose event this is (null: a wallet's).")
    wallet_id: str | None = Field(
        default=None, description="The wallet whose event this is (null: a seller's)."
    )
    sequence: int = Field(
        description="1, 2, 3 ... per seller (or wallet), in the order the changes happened."
    )
    created_at: datetime
    data: dict[str, Any]

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        """A wallet's event is in the stream ``wallet/<id>``: shown by its wallet."""
        wallet_id = data.wallet_id
        return Attributes(
            data, wallet_id=wallet_id, seller_id=data.seller_id if wallet_id is None else None
        )


class DeliveryAttemptOut(ResponseModel):
    attempt: int
    attempted_at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


class WebhookDeliveryOut(ObjectOut):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event_id: str
    event_type: str
    endpoint_id: str
    seller_id: str
    sequence: int
    status: Annotated[
        Literal["pending", "succeeded", "failed", "cancelled"], BeforeValidator(as_text)
    ]
    attempts: int
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    succeeded_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    workflow_id: str = Field(description="The delivery workflow of this endpoint and seller.")

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        return Attributes(data, workflow_id=f"webhook-delivery/{data.endpoint_id}/{data.seller_id}")


class WebhookDeliveryDetail(WebhookDeliveryOut):
    attempt_history: list[DeliveryAttemptOut]
