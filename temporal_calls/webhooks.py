"""Waking webhook delivery workflows (signal-with-start), for the worker's dispatcher."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from contracts.common import TASK_QUEUE
from contracts.webhooks import (
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
    signal: bool = True,
) -> None:
    """Make sure the stream's delivery workflow runs and looks for pending deliveries.

    ``signal`` (a new delivery was notified): signal-with-start, so a running workflow looks
    again even if it just found nothing. Without (the periodic sweep): start it only if it does
    not run; a running one finds the pending deliveries itself, and a stream retrying one
    delivery for hours does not collect a signal in its history at every sweep."""
    conflict = WorkflowIDConflictPolicy
    await client.start_workflow(
        WEBHOOK_DELIVERY_WORKFLOW,
        WebhookStreamInput(endpoint_id=endpoint_id, seller_id=seller_id, retry=retry),
        id=webhook_delivery_workflow_id(endpoint_id, seller_id),
        task_queue=task_queue,
        # Signal-with-start (the server's default conflict handling), or start unless it runs.
        start_signal=WAKE_SIGNAL if signal else None,
        id_conflict_policy=conflict.UNSPECIFIED if signal else conflict.USE_EXISTING,
    )
