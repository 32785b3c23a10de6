"""Driving payouts: start a payout and hear whether its money was reserved, cancel it, read its
state, hand it the rail's webhook events. (Refunds are the API's own database writes.)

Errors are ``WorkflowRequestError`` with the domain's codes:

==========================  ===============================================================
code                        when
==========================  ===============================================================
nothing_to_pay              a payout of everything available, and available <= 0
payout_account_missing      the seller has no payout account
payout_account_failed       the seller's payout account failed (a new one clears it)
instant_not_supported       instant: the payout account takes no instant payments
instant_limit_exceeded      instant: the amount is more than what is left of the day's limit
insufficient_balance        the amount is more than the seller's available balance
payout_conflict             the payout id exists for another seller or amount
payout_not_found            cancel/get an unknown payout
invalid_payout_state        cancel after the payout was submitted to the rail
seller_not_found            unknown seller
==========================  ===============================================================
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from contracts.common import TASK_QUEUE
from contracts.payouts import (
    CANCEL_UPDATE,
    PAYOUT_METHOD,
    PAYOUT_STATUS,
    PAYOUT_WORKFLOW,
    RAIL_EVENT_SIGNAL,
    RESERVED_UPDATE,
    STATE_QUERY,
    CancelPayoutRequest,
    PayoutMethod,
    PayoutOrigin,
    PayoutResult,
    PayoutStatus,
    PayoutWorkflowInput,
    PayoutWorkflowState,
    RailEventSignal,
    payout_workflow_id,
)
from payment_rail import RailEvent
from temporal_calls.errors import (
    WorkflowRequestError,
    answered,
    unless_not_found,
    update_with_start,
)
from temporal_calls.search import seller_attributes


async def start_payout(
    client: Client,
    payout_id: str,
    seller_id: str,
    amount: int | None = None,
    *,
    origin: str = PayoutOrigin.MANUAL,
    metadata: dict[str, Any] | None = None,
    submit_after_seconds: float = 0,
    task_queue: str = TASK_QUEUE,
    method: str = PayoutMethod.STANDARD,
) -> PayoutResult:
    """Start the payout workflow (update-with-start) and return the payout as it was when its
    money was reserved (a repeat gets that answer again; read the database for what it is
    now). A business error (nothing to pay, no payout account, ...) is raised as
    ``WorkflowRequestError``. ``method`` instant: over the real-time rail, for a fee.

    Idempotent by payout id: a repeat returns the same answer (or the same error); the same id
    for another seller or amount is ``payout_conflict``."""
    start: WithStartWorkflowOperation[Any, PayoutWorkflowState] = WithStartWorkflowOperation(
        PAYOUT_WORKFLOW,
        PayoutWorkflowInput(
            payout_id=payout_id,
            seller_id=seller_id,
            amount=amount,
            origin=origin,
            metadata=metadata or {},
            submit_after_seconds=submit_after_seconds,
            method=str(method),
        ),
        id=payout_workflow_id(payout_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=seller_attributes(
            seller_id,
            SearchAttributePair(PAYOUT_STATUS, str(PayoutStatus.PENDING)),
            SearchAttributePair(PAYOUT_METHOD, str(method)),
        ),
        static_summary=f"{'Instant payout' if method == PayoutMethod.INSTANT else 'Payout'} "
        f"{payout_id} to seller {seller_id}",
        result_type=PayoutWorkflowState,
    )

    async def ended() -> PayoutResult:
        # It ran and completed: its state says what became of it.
        state = await get_payout_state(client, payout_id)
        if state.payout is None:
            raise WorkflowRequestError(
                state.error_code or "workflow_failed", state.error_message or "nothing reserved"
            )
        return state.payout

    result = await update_with_start(client, RESERVED_UPDATE, start, PayoutResult, ended)
    if (
        result.seller_id != seller_id
        or (amount is not None and result.amount != amount)
        or result.method != method
    ):
        raise WorkflowRequestError(
            "payout_conflict",
            f"payout {payout_id!r} exists for seller {result.seller_id}, amount {result.amount}, "
            f"method {result.method}",
            payout_id=payout_id,
        )
    return result


async def cancel_payout(client: Client, payout_id: str, note: str = "") -> PayoutResult:
    """Cancel a payout not yet submitted to the rail (its money is available again);
    ``invalid_payout_state`` once it was submitted. Cancelling a cancelled payout returns it."""
    cancelled: PayoutResult | None = await unless_not_found(
        answered(
            _payout_handle(client, payout_id).execute_update(
                CANCEL_UPDATE, CancelPayoutRequest(note), result_type=PayoutResult
            )
        ),
        None,
    )
    if cancelled is not None:
        return cancelled
    state = await get_payout_state(client, payout_id)  # it has ended (or never existed)
    if state.status == PayoutStatus.CANCELLED and state.payout is not None:
        return state.payout
    raise WorkflowRequestError(
        "invalid_payout_state",
        f"payout {payout_id!r} is {state.status}; only a payout not yet submitted is cancelled",
    )


async def get_payout_state(client: Client, payout_id: str) -> PayoutWorkflowState:
    """The payout workflow's state (also after it ended)."""
    return await unless_not_found(
        _payout_handle(client, payout_id).query(STATE_QUERY, result_type=PayoutWorkflowState),
        WorkflowRequestError("payout_not_found", f"payout {payout_id!r} not found"),
    )


async def signal_rail_event(client: Client, event: RailEvent) -> bool:
    """Hand a verified rail webhook event to its payout's workflow. False if no workflow is
    running for it (unknown payout, or one that has ended: nothing left to learn)."""
    signal = RailEventSignal(
        event_id=event.id,
        type=str(event.type),
        payout_id=event.payout_id,
        occurred_at=event.occurred_at,
        code=event.code,
        reason=event.reason,
    )
    handle = _payout_handle(client, event.payout_id)
    # The signal answers None; NOT_FOUND answers False.
    return await unless_not_found(handle.signal(RAIL_EVENT_SIGNAL, signal), False) is None


def _payout_handle(client: Client, payout_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(
        payout_workflow_id(payout_id), result_type=PayoutWorkflowState
    )
