"""Driving the sellers' hold workflows: wake one (signal-with-start), steer a hold (release,
extend, cancel by update), read its state.

Errors are ``WorkflowRequestError`` with the domain's codes: ``validation_failed`` (bad order id,
new hold end not later), ``hold_not_found`` (no such hold, or no hold workflow),
``invalid_hold_state`` (the hold already ended). Connection problems and RPC timeouts propagate
as the SDK raises them: a retry is safe (everything is keyed by order id). Earnings are booked by
the API in its own database transaction (``marketplace.booking``), not through a workflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from contracts.common import TASK_QUEUE
from contracts.holds import (
    CANCEL_HOLD_UPDATE,
    DEFAULT_HISTORY_LIMIT,
    EXTEND_HOLD_UPDATE,
    RELEASE_HOLD_UPDATE,
    SELLER_HOLD_WORKFLOW,
    STATE_QUERY,
    WAKE_SIGNAL,
    CancelHoldRequest,
    EarningResult,
    ExtendHoldRequest,
    HoldsState,
    ReleaseHoldRequest,
    SellerHoldInput,
    seller_holds_workflow_id,
)
from temporal_calls.errors import WorkflowRequestError, answered, unless_not_found
from temporal_calls.search import seller_attributes


async def start_seller_holds(
    client: Client,
    seller_id: str,
    *,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    task_queue: str = TASK_QUEUE,
    start_signal: str | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start the seller's hold workflow if it is not running (``wake_seller_holds`` does this by
    itself; tests use it to set a small ``history_limit``)."""
    return await client.start_workflow(
        SELLER_HOLD_WORKFLOW,
        SellerHoldInput(seller_id=seller_id, history_limit=history_limit),
        id=seller_holds_workflow_id(seller_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=seller_attributes(seller_id),
        static_summary=f"Holds of seller {seller_id}",
        start_signal=start_signal,
    )


async def wake_seller_holds(
    client: Client, seller_id: str, *, task_queue: str = TASK_QUEUE
) -> None:
    """Signal the seller's hold workflow to run a turn now, starting it if it is not running
    (signal-with-start: one round trip either way)."""
    await start_seller_holds(client, seller_id, task_queue=task_queue, start_signal=WAKE_SIGNAL)


async def get_holds_state(client: Client, seller_id: str) -> HoldsState | None:
    """The hold workflow's ``state`` query (None if the seller has no hold workflow)."""
    handle = client.get_workflow_handle(seller_holds_workflow_id(seller_id))
    return await unless_not_found(handle.query(STATE_QUERY, result_type=HoldsState), None)


async def release_hold(client: Client, seller_id: str, order_id: str) -> EarningResult:
    """End the hold now: the earning posts (and its reserve, if any, is held back)."""
    return await _hold_update(
        client, seller_id, order_id, RELEASE_HOLD_UPDATE, ReleaseHoldRequest(order_id)
    )


async def extend_hold(
    client: Client, seller_id: str, order_id: str, hold_until: datetime
) -> EarningResult:
    """Move the hold's end to ``hold_until`` (timezone-aware, later than the current end)."""
    return await _hold_update(
        client,
        seller_id,
        order_id,
        EXTEND_HOLD_UPDATE,
        ExtendHoldRequest(order_id=order_id, hold_until=hold_until),
    )


async def cancel_hold(client: Client, seller_id: str, order_id: str) -> EarningResult:
    """Refund during the hold: archive the pending earning and drop the hold."""
    return await _hold_update(
        client, seller_id, order_id, CANCEL_HOLD_UPDATE, CancelHoldRequest(order_id)
    )


async def _hold_update(
    client: Client, seller_id: str, order_id: str, update: str, request: object
) -> EarningResult:
    handle = client.get_workflow_handle(seller_holds_workflow_id(seller_id))
    return await unless_not_found(
        answered(handle.execute_update(update, request, result_type=EarningResult)),
        WorkflowRequestError(
            "hold_not_found", f"seller {seller_id!r} has no hold for order {order_id!r}"
        ),
    )
