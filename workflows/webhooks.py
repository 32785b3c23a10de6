"""The webhook delivery workflow (id ``webhook-delivery/<endpoint>/<seller>``): sends one
stream's deliveries (marketplace.events: one endpoint, one seller) in sequence order, each with
retries and exponential back-off, then ends when nothing is pending.

The worker's dispatcher starts it, or wakes it if it runs, with signal-with-start (``wake``) when
PostgreSQL notifies a new delivery (and on a periodic sweep, in case a notification was lost).
The workflow reads what to send from the database, so a wake carries no data and any number of
them is harmless. A delivery is attempted until the receiver answers 2xx or the attempts run
out; then it is marked ``failed`` and the stream goes on (an operator re-sends it through the
API, which wakes the stream again). So a receiver gets a seller's events in order, except a
re-sent one.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.common import ACTIVITY_TIMEOUT, call_activity

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.webhooks import (
        FAIL_WEBHOOK_DELIVERY,
        PENDING_WEBHOOK_DELIVERIES,
        SEND_WEBHOOK,
        STATE_QUERY,
        WAKE_SIGNAL,
        WEBHOOK_DELIVERY_WORKFLOW,
        FailDeliveryInput,
        PendingDeliveriesInput,
        SendWebhookResult,
        WebhookStreamInput,
        WebhookStreamState,
    )

# Connect + answer of one attempt is bounded by the HTTP client (10 s); this bounds the rest.
SEND_TIMEOUT = timedelta(seconds=60)
# Reading and marking in the database retry until the database answers.
DURABLE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
BATCH = 100
# Continue as new well before the history gets long (each delivery is ~6 events).
HISTORY_LIMIT = 5_000


@workflow.defn(name=WEBHOOK_DELIVERY_WORKFLOW)
class WebhookDeliveryWorkflow:
    @workflow.init
    def __init__(self, input: WebhookStreamInput) -> None:
        self._input = input
        self._wakes = 0
        self._sending: str | None = None
        self._succeeded = 0
        self._failed = 0
        self._skipped = 0

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self) -> None:
        self._wakes += 1

    @workflow.query(name=STATE_QUERY)
    def state(self) -> WebhookStreamState:
        return WebhookStreamState(
            endpoint_id=self._input.endpoint_id,
            seller_id=self._input.seller_id,
            sending=self._sending,
            succeeded=self._succeeded,
            failed=self._failed,
            skipped=self._skipped,
        )

    @workflow.run
    async def run(self, input: WebhookStreamInput) -> WebhookStreamState:
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id)])
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=input.retry.initial_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=input.retry.maximum_seconds),
            maximum_attempts=input.retry.maximum_attempts,
        )
        while True:
            wakes_before = self._wakes
            pending = await call_activity(
                PENDING_WEBHOOK_DELIVERIES,
                PendingDeliveriesInput(input.endpoint_id, input.seller_id, BATCH),
                list[str],
                DURABLE_RETRY,
            )
            for delivery_id in pending:
                await self._send(delivery_id, retry)
            self._sending = None
            if not pending and self._wakes == wakes_before:
                # Nothing pending and no wake since we looked: done. A wake racing this
                # completion makes the server refuse it and the loop looks again.
                return self.state()
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > (
                HISTORY_LIMIT
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input)

    async def _send(self, delivery_id: str, retry: RetryPolicy) -> None:
        self._sending = delivery_id
        try:
            result = await call_activity(
                SEND_WEBHOOK,
                delivery_id,
                SendWebhookResult,
                retry,
                timeout=SEND_TIMEOUT,
            )
        except ActivityError as err:
            cause = err.cause
            reason = str(cause) if cause is not None else str(err)
            await workflow.execute_activity(
                FAIL_WEBHOOK_DELIVERY,
                FailDeliveryInput(delivery_id, f"retries exhausted; last: {reason}"),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=DURABLE_RETRY,
            )
            self._failed += 1
            return
        if result.outcome == "succeeded":
            self._succeeded += 1
        else:
            self._skipped += 1
