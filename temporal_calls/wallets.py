"""Driving the wallets' expiry workflows: wake one (signal-with-start) and read its state.

Top-ups, spends, refunds, transfers and changes of an expiry are the API's own database writes
(``marketplace.wallets`` and the ``marketplace.wallet_*`` modules); a write whose lot expires
before the workflow would look asks the worker's dispatcher (a notification at commit) to wake
the workflow with ``wake_wallet_expiries``.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from contracts.common import TASK_QUEUE
from contracts.wallets import (
    DEFAULT_HISTORY_LIMIT,
    STATE_QUERY,
    WAKE_SIGNAL,
    WALLET_EXPIRY_WORKFLOW,
    WalletExpiryInput,
    WalletExpiryState,
    wallet_expiries_workflow_id,
)
from temporal_calls.errors import unless_not_found


async def start_wallet_expiries(
    client: Client,
    wallet_id: str,
    *,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    task_queue: str = TASK_QUEUE,
    start_signal: str | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start the wallet's expiry workflow if it is not running."""
    return await client.start_workflow(
        WALLET_EXPIRY_WORKFLOW,
        WalletExpiryInput(wallet_id=wallet_id, history_limit=history_limit),
        id=wallet_expiries_workflow_id(wallet_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Expiries of wallet {wallet_id}",
        start_signal=start_signal,
    )


async def wake_wallet_expiries(
    client: Client, wallet_id: str, *, task_queue: str = TASK_QUEUE
) -> None:
    """Signal the wallet's expiry workflow to run a turn now, starting it if it is not running
    (signal-with-start: one round trip either way)."""
    await start_wallet_expiries(client, wallet_id, task_queue=task_queue, start_signal=WAKE_SIGNAL)


async def get_wallet_expiry_state(client: Client, wallet_id: str) -> WalletExpiryState | None:
    """The expiry workflow's ``state`` query (None if the wallet has none)."""
    handle = client.get_workflow_handle(wallet_expiries_workflow_id(wallet_id))
    return await unless_not_found(handle.query(STATE_QUERY, result_type=WalletExpiryState), None)
