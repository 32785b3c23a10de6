"""What the API and the worker call to drive the marketplace workflows: wake a seller's hold
workflow (signal-with-start), steer a hold, open, resolve and read a dispute.

Every function raises ``WorkflowRequestError`` (``.code``, ``.message``) for a rejected or failed
request, with the codes of the domain errors:

=============================  ===========================================================
code                           when
=============================  ===========================================================
validation_failed              bad amount / fee / order id / outcome, new hold end not later
seller_not_found               open_dispute for an unknown seller
hold_not_found                 release/extend/cancel: no such hold (or no hold workflow)
invalid_hold_state             release/extend/cancel: the hold already ended
dispute_conflict               the dispute id exists with other terms
dispute_not_found              resolve/get an unknown dispute
dispute_already_resolved       resolve with the other outcome
=============================  ===========================================================

Connection problems and RPC timeouts propagate as the SDK raises them (``RPCError``,
``WorkflowUpdateRPCTimeoutOrCancelledError``): the request may or may not have happened, and a
retry is safe (everything is keyed by order id / dispute id). Earnings are booked by the API in
its own database transaction (``marketplace.booking``), not through a workflow.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.types import DisputeResult, EarningResult
from workflows.disputes import DisputeWorkflow
from workflows.errors import WorkflowRequestError, request_error
from workflows.registry import TASK_QUEUE
from workflows.seller_holds import SellerHoldWorkflow
from workflows.types import (
    DEFAULT_HISTORY_LIMIT,
    SELLER_ID,
    CancelHoldRequest,
    DisputeInput,
    DisputeState,
    ExtendHoldRequest,
    HoldsState,
    ReleaseHoldRequest,
    ResolveDisputeRequest,
    SellerHoldInput,
    dispute_workflow_id,
    seller_holds_workflow_id,
)

__all__ = [
    "DisputeResult",
    "DisputeState",
    "EarningResult",
    "HoldsState",
    "WorkflowRequestError",
    "cancel_hold",
    "extend_hold",
    "get_dispute",
    "get_holds_state",
    "open_dispute",
    "release_hold",
    "resolve_dispute",
    "start_seller_holds",
    "wake_seller_holds",
]


def _seller_attributes(seller_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(SELLER_ID, seller_id)])


async def start_seller_holds(
    client: Client,
    seller_id: str,
    *,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    task_queue: str = TASK_QUEUE,
) -> WorkflowHandle[SellerHoldWorkflow, None]:
    """Start the seller's hold workflow if it is not running (``wake_seller_holds`` does this by
    itself; tests use it to set a small ``history_limit``)."""
    return await client.start_workflow(
        SellerHoldWorkflow.run,
        SellerHoldInput(seller_id=seller_id, history_limit=history_limit),
        id=seller_holds_workflow_id(seller_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=_seller_attributes(seller_id),
        static_summary=f"Holds of seller {seller_id}",
    )


async def wake_seller_holds(
    client: Client, seller_id: str, *, task_queue: str = TASK_QUEUE
) -> None:
    """Signal the seller's hold workflow to run a turn now, starting it if it is not running
    (signal-with-start: one round trip either way)."""
    await client.start_workflow(
        SellerHoldWorkflow.run,
        SellerHoldInput(seller_id=seller_id),
        id=seller_holds_workflow_id(seller_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=_seller_attributes(seller_id),
        static_summary=f"Holds of seller {seller_id}",
        start_signal="wake",
    )


async def get_holds_state(client: Client, seller_id: str) -> HoldsState | None:
    """The hold workflow's ``state`` query (None if the seller has no hold workflow)."""
    handle = client.get_workflow_handle_for(
        SellerHoldWorkflow.run, seller_holds_workflow_id(seller_id)
    )
    try:
        return await handle.query(SellerHoldWorkflow.state)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def release_hold(client: Client, seller_id: str, order_id: str) -> EarningResult:
    """End the hold now: the earning posts (and its reserve, if any, is held back)."""
    return await _hold_update(
        client, seller_id, order_id, SellerHoldWorkflow.release_hold, ReleaseHoldRequest(order_id)
    )


async def extend_hold(
    client: Client, seller_id: str, order_id: str, hold_until: datetime
) -> EarningResult:
    """Move the hold's end to ``hold_until`` (timezone-aware, later than the current end)."""
    return await _hold_update(
        client,
        seller_id,
        order_id,
        SellerHoldWorkflow.extend_hold,
        ExtendHoldRequest(order_id=order_id, hold_until=hold_until),
    )


async def cancel_hold(client: Client, seller_id: str, order_id: str) -> EarningResult:
    """Refund during the hold: archive the pending earning and drop the hold."""
    return await _hold_update(
        client, seller_id, order_id, SellerHoldWorkflow.cancel_hold, CancelHoldRequest(order_id)
    )


def _dispute_start(
    dispute_id: str,
    seller_id: str,
    order_id: str,
    amount: int,
    deadline: datetime,
    reason: str,
    metadata: dict[str, Any] | None,
    task_queue: str,
) -> dict[str, Any]:
    """The dispute workflow's start: its input and options, one for every way it is started."""
    return {
        "workflow": DisputeWorkflow.run,
        "arg": DisputeInput(
            dispute_id=dispute_id,
            seller_id=seller_id,
            order_id=order_id,
            amount=amount,
            deadline=deadline,
            reason=reason,
            metadata=metadata or {},
        ),
        "id": dispute_workflow_id(dispute_id),
        "task_queue": task_queue,
        "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
        # A dispute whose opening failed (e.g. unknown seller) may be opened again; one that
        # ran is never started twice.
        "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        "search_attributes": _seller_attributes(seller_id),
        "static_summary": f"Dispute {dispute_id} of seller {seller_id}, order {order_id}",
    }


async def start_dispute(
    client: Client,
    dispute_id: str,
    seller_id: str,
    order_id: str,
    amount: int,
    deadline: datetime,
    reason: str = "",
    metadata: dict[str, Any] | None = None,
    *,
    task_queue: str = TASK_QUEUE,
) -> None:
    """Start the dispute workflow (it keeps the deadline and opens the pending debit if nobody
    has), answered once Temporal has recorded the start: nothing waits for the workflow to run.
    The API writes the dispute itself, after this. A repeat does nothing (the workflow runs, or
    ran)."""
    options = _dispute_start(
        dispute_id, seller_id, order_id, amount, deadline, reason, metadata, task_queue
    )
    workflow = options.pop("workflow")
    arg = options.pop("arg")
    with contextlib.suppress(WorkflowAlreadyStartedError):  # it ran and completed
        await client.start_workflow(workflow, arg, **options)


async def tell_dispute_outcome(client: Client, dispute_id: str, outcome: str) -> None:
    """Tell the dispute's workflow its outcome (the ``resolve_signal``: it stops waiting for the
    deadline and records the outcome the database has). A workflow that no longer runs (ended,
    or never started) has nothing to hear."""
    handle = client.get_workflow_handle_for(DisputeWorkflow.run, dispute_workflow_id(dispute_id))
    try:
        await handle.signal(DisputeWorkflow.resolve_signal, ResolveDisputeRequest(outcome=outcome))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise


async def open_dispute(
    client: Client,
    dispute_id: str,
    seller_id: str,
    order_id: str,
    amount: int,
    deadline: datetime,
    reason: str = "",
    metadata: dict[str, Any] | None = None,
    *,
    task_queue: str = TASK_QUEUE,
) -> DisputeResult:
    """Start the dispute workflow and return the dispute once its pending debit is written (the
    workflow's ``opened`` update). Idempotent by dispute id: a repeat returns the dispute as it
    is now (also after it ended). For callers that want the workflow to open the dispute; the
    API opens it itself (``start_dispute``)."""
    options = _dispute_start(
        dispute_id, seller_id, order_id, amount, deadline, reason, metadata, task_queue
    )
    start = WithStartWorkflowOperation(options.pop("workflow"), options.pop("arg"), **options)
    try:
        result: DisputeResult = await client.execute_update_with_start_workflow(
            DisputeWorkflow.opened, start_workflow_operation=start, id="opened"
        )
    except WorkflowUpdateFailedError as err:
        raise request_error(err) from err
    except (WorkflowAlreadyStartedError, RPCError) as err:
        if isinstance(err, RPCError) and err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        # It ran and completed: its result is the dispute as it ended.
        handle = client.get_workflow_handle_for(
            DisputeWorkflow.run, dispute_workflow_id(dispute_id)
        )
        return await handle.result()
    return result


async def resolve_dispute(client: Client, dispute_id: str, outcome: str) -> DisputeResult:
    """Won (archive the debit) or lost (post it); returns the resolved dispute. The same outcome
    again returns it; the other one fails with dispute_already_resolved."""
    handle = client.get_workflow_handle_for(DisputeWorkflow.run, dispute_workflow_id(dispute_id))
    try:
        return await handle.execute_update(
            DisputeWorkflow.resolve, ResolveDisputeRequest(outcome=outcome)
        )
    except WorkflowUpdateFailedError as err:
        raise request_error(err) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    # Not running: unknown, or it has ended (resolved, or the deadline passed).
    ended = await _ended_dispute(client, dispute_id)
    if ended.status != outcome:
        raise WorkflowRequestError(
            "dispute_already_resolved",
            f"dispute {dispute_id!r} is already resolved as {ended.status}",
        )
    return ended


async def get_dispute(client: Client, dispute_id: str) -> DisputeState:
    """The dispute workflow's state (works after it ended too)."""
    handle = client.get_workflow_handle_for(DisputeWorkflow.run, dispute_workflow_id(dispute_id))
    try:
        return await handle.query(DisputeWorkflow.state)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise WorkflowRequestError(
                "dispute_not_found", f"dispute {dispute_id!r} not found"
            ) from err
        raise


async def _ended_dispute(client: Client, dispute_id: str) -> DisputeResult:
    handle = client.get_workflow_handle_for(DisputeWorkflow.run, dispute_workflow_id(dispute_id))
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise WorkflowRequestError(
                "dispute_not_found", f"dispute {dispute_id!r} not found"
            ) from err
        raise
    if description.status != WorkflowExecutionStatus.COMPLETED:
        raise WorkflowRequestError("dispute_not_found", f"dispute {dispute_id!r} was never opened")
    try:
        return await handle.result()
    except WorkflowFailureError as err:
        raise request_error(err) from err


async def _hold_update(
    client: Client, seller_id: str, order_id: str, update: Any, request: Any
) -> EarningResult:
    handle = client.get_workflow_handle_for(
        SellerHoldWorkflow.run, seller_holds_workflow_id(seller_id)
    )
    try:
        result: EarningResult = await handle.execute_update(update, request)
    except WorkflowUpdateFailedError as err:
        raise request_error(err) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise WorkflowRequestError(
                "hold_not_found", f"seller {seller_id!r} has no hold for order {order_id!r}"
            ) from err
        raise
    return result
