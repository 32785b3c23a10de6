"""Waking webhook delivery workflows (signal-with-start), for the worker's dispatcher."""

from __future__ import annotations

from temporalio.client import Client

from workflows.registry import TASK_QUEUE
from workflows.webhook_types import (
    WAKE_SIGNAL,
    WEBHOOK_DELIVERY_WORKFLOW,
    WebhookRetry,
    WebhookStreamInput,
    webhook_delivery_workflow_id,
)


async def wake_delivery_stream(
    client: Client,
    endpoint_id: str,
    seller_id: str,
    *,
    retry: WebhookRetry,
    task_queue: str = TASK_QUEUE,
) -> None:
    """Start the stream's delivery workflow, or signal it if it runs (a new run if the last one
    ended): it then looks for pending deliveries again."""
    await client.start_workflow(
        WEBHOOK_DELIVERY_WORKFLOW,
        WebhookStreamInput(endpoint_id=endpoint_id, seller_id=seller_id, retry=retry),
        id=webhook_delivery_workflow_id(endpoint_id, seller_id),
        task_queue=task_queue,
        start_signal=WAKE_SIGNAL,
    )
