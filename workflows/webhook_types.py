"""Input, query result and ids of the webhook delivery workflow. Plain dataclasses, safe to
import from workflow code, the worker's dispatcher and the API alike."""

from __future__ import annotations

from dataclasses import dataclass

WEBHOOK_DELIVERY_WORKFLOW = "WebhookDelivery"
WAKE_SIGNAL = "wake"


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
