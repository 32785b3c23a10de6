"""The webhook delivery workflow (one per endpoint and seller) and its activities: names, ids,
inputs and results."""

from __future__ import annotations

from dataclasses import dataclass

WEBHOOK_DELIVERY_WORKFLOW = "WebhookDelivery"
WAKE_SIGNAL = "wake"
STATE_QUERY = "state"

PENDING_WEBHOOK_DELIVERIES = "pending_webhook_deliveries"
SEND_WEBHOOK = "send_webhook"
FAIL_WEBHOOK_DELIVERY = "fail_webhook_delivery"
# ApplicationError type of a failed attempt (retried by the workflow's retry policy).
WEBHOOK_ATTEMPT_FAILED = "webhook_attempt_failed"


def webhook_delivery_workflow_id(endpoint_id: str, seller_id: str) -> str:
    """One delivery workflow per stream: an endpoint and a seller (in order per seller)."""
    return f"webhook-delivery/{endpoint_id}/{seller_id}"


@dataclass
class WebhookRetry:
    """The back-off of one delivery: ``initial_seconds``, doubling up to ``maximum_seconds``,
    at most ``maximum_attempts`` attempts; then the delivery is ``failed`` (and re-sendable)."""

    initial_seconds: float = 5.0
    maximum_seconds: float = 3600.0
    maximum_attempts: int = 25


@dataclass
class WebhookStreamInput:
    endpoint_id: str
    seller_id: str
    retry: WebhookRetry


@dataclass
class WebhookStreamState:
    endpoint_id: str
    seller_id: str
    sending: str | None
    """The delivery being sent (or retried) now."""
    succeeded: int
    failed: int
    skipped: int


@dataclass
class PendingDeliveriesInput:
    endpoint_id: str
    seller_id: str
    limit: int = 100


@dataclass
class SendWebhookResult:
    delivery_id: str
    outcome: str
    """succeeded, or skipped (no longer pending: sent, failed, or its endpoint deleted)."""
    attempt: int = 0
    response_status: int | None = None


@dataclass
class FailDeliveryInput:
    delivery_id: str
    reason: str
