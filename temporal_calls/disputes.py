"""Driving the dispute workflows: start one, tell it an outcome, resolve it, read it.

Errors are ``WorkflowRequestError`` with the domain's codes: ``validation_failed`` (bad
outcome), ``seller_not_found`` (open for an unknown seller), ``dispute_conflict`` (the id exists
with other terms), ``dispute_not_found`` (resolve or get an unknown dispute),
``dispute_already_resolved`` (resolve with the other outcome). Connection problems propagate as
the SDK raises them; a retry is safe (everything is keyed by dispute id).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.common import TASK_QUEUE
from contracts.disputes import (
    DEADLINE_SIGNAL,
    DISPUTE_WORKFLOW,
    OPENED_UPDATE,
    RESOLVE_SIGNAL,
    RESOLVE_UPDATE,
    STATE_QUERY,
    DisputeInput,
    DisputeResult,
    DisputeState,
    ResolveDisputeRequest,
    dispute_workflow_id,
)
from temporal_calls.errors import (
    WorkflowRequestError,
    answered,
    unless_not_found,
    update_with_start,
)
from temporal_calls.search import seller_attributes


def _dispute_start(
    dispute_id: str,
    seller_id: str,
    order_id: str,
    amount: int,
    deadline: datetime,
    reason: str,
    metadata: dict[str, Any] | None,
    task_queue: str,
    test_clock_id: str | None = None,
) -> dict[str, Any]:
    """The dispute workflow's start: its input and options, one for every way it is started."""
    return {
        "workflow": DISPUTE_WORKFLOW,
        "arg": DisputeInput(
            dispute_id=dispute_id,
            seller_id=seller_id,
            order_id=order_id,
            amount=amount,
            deadline=deadline,
            reason=reason,
            metadata=metadata or {},
            test_clock_id=test_clock_id,
        ),
        "id": dispute_workflow_id(dispute_id),
        "task_queue": task_queue,
        "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
        # A dispute whose opening failed (e.g. unknown seller) may be opened again; one that
        # ran is never started twice.
        "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        "search_attributes": seller_attributes(seller_id),
        "static_summary": f"Dispute {dispute_id} of seller {seller_id}, order {order_id}",
        "result_type": DisputeResult,
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
    test_clock_id: str | None = None,
) -> None:
    """Start the dispute workflow (it keeps the deadline and opens the pending debit if nobody
    has), answered once Temporal has recorded the start: nothing waits for the workflow to run.
    The API writes the dispute itself, after this. A repeat does nothing (the workflow runs, or
    ran). ``test_clock_id``: the seller's test clock, whose time the deadline is in."""
    options = _dispute_start(
        dispute_id,
        seller_id,
        order_id,
        amount,
        deadline,
        reason,
        metadata,
        task_queue,
        test_clock_id,
    )
    workflow = options.pop("workflow")
    arg = options.pop("arg")
    with contextlib.suppress(WorkflowAlreadyStartedError):  # it ran and completed
        await client.start_workflow(workflow, arg, **options)


async def tell_dispute_outcome(client: Client, dispute_id: str, outcome: str) -> None:
    """Tell the dispute's workflow its outcome (the ``resolve_signal``: it stops waiting for the
    deadline and records the outcome the database has). A workflow that no longer runs (ended,
    or never started) has nothing to hear."""
    handle = client.get_workflow_handle(dispute_workflow_id(dispute_id))
    await unless_not_found(
        handle.signal(RESOLVE_SIGNAL, ResolveDisputeRequest(outcome=outcome)), None
    )


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
    # A dispute that ran and completed answers with its result: the dispute as it ended.
    return await update_with_start(
        client, OPENED_UPDATE, start, DisputeResult, _dispute_handle(client, dispute_id).result
    )


async def resolve_dispute(client: Client, dispute_id: str, outcome: str) -> DisputeResult:
    """Won (archive the debit) or lost (post it); returns the resolved dispute. The same outcome
    again returns it; the other one fails with dispute_already_resolved."""
    handle = _dispute_handle(client, dispute_id)
    resolved: DisputeResult | None = await unless_not_found(
        answered(
            handle.execute_update(
                RESOLVE_UPDATE, ResolveDisputeRequest(outcome=outcome), result_type=DisputeResult
            )
        ),
        None,
    )
    if resolved is not None:
        return resolved
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
    handle = _dispute_handle(client, dispute_id)
    return await unless_not_found(
        handle.query(STATE_QUERY, result_type=DisputeState), _not_found(dispute_id)
    )


def _dispute_handle(client: Client, dispute_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(dispute_workflow_id(dispute_id), result_type=DisputeResult)


def _not_found(dispute_id: str, message: str = "not found") -> WorkflowRequestError:
    return WorkflowRequestError("dispute_not_found", f"dispute {dispute_id!r} {message}")


async def _ended_dispute(client: Client, dispute_id: str) -> DisputeResult:
    handle = _dispute_handle(client, dispute_id)
    description = await unless_not_found(handle.describe(), _not_found(dispute_id))
    if description.status != WorkflowExecutionStatus.COMPLETED:
        raise _not_found(dispute_id, "was never opened")
    result: DisputeResult = await answered(handle.result())
    return result


async def tell_deadline_passed(client: Client, dispute_id: str) -> None:
    """A test clock's advance passed the dispute's deadline: tell its workflow (one that no
    longer runs has nothing to hear)."""
    handle = client.get_workflow_handle(dispute_workflow_id(dispute_id))
    await unless_not_found(handle.signal(DEADLINE_SIGNAL), None)
