"""Names, inputs and results of the webhook delivery activities. Plain dataclasses with no
database imports: the delivery workflow imports them to call the activities by name."""

from __future__ import annotations

from dataclasses import dataclass

PENDING_WEBHOOK_DELIVERIES = "pending_webhook_deliveries"
SEND_WEBHOOK = "send_webhook"
FAIL_WEBHOOK_DELIVERY = "fail_webhook_delivery"
# ApplicationError type of a failed attempt (retried by the workflow's retry policy).
WEBHOOK_ATTEMPT_FAILED = "webhook_attempt_failed"


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
