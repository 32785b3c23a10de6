"""The payout workflow's return window on the time-skipping server (here, next to the other
time-skipping tests, which share the server's search-attribute registration): a return inside
the window reverses the payout; a payout not returned ends as paid once 14 days have passed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus

from marketplace import Payouts
from payment_rail import ACCOUNT_RETURNED, RailOutcome, SimulatedBank
from tests.payouts.conftest import (
    BankWebhooks,
    bank,
    exactly_once,
    payout_status,
    payout_worker,
    payouts,
    seller_with_available,
    views,
    webhooks,
)
from tests.workflows.conftest import SkippingEnv, eventually
from workflows.payout_client import get_payout_state, start_payout
from workflows.payout_types import payout_workflow_id

__all__ = ["bank", "payouts", "webhooks"]


def _status_is(engine: Engine, payouts: Payouts, payout_id: str, status: str) -> None:
    assert payout_status(engine, payouts, payout_id) == status


async def _closed(client: Client, payout_id: str) -> None:
    description = await client.get_workflow_handle(payout_workflow_id(payout_id)).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED


async def test_return_window_on_the_time_skipping_server(
    skipping_env: SkippingEnv,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    env, seller, pid, kept = skipping_env, f"s-{uid}", f"p-{uid}", f"k-{uid}"
    seller_with_available(engine, payouts, seller, 3_000, account_number=ACCOUNT_RETURNED)
    bank.force_outcome(kept, RailOutcome.PAID)
    async with payout_worker(
        env.client,
        engine,
        bank,
        webhooks,
        task_queue=task_queue,
        return_window_seconds=14 * 86_400,
    ):
        # Paid, then returned by the bank (its return account) inside the window.
        await start_payout(env.client, pid, seller, 1_000, task_queue=task_queue)
        await eventually(lambda: _status_is(engine, payouts, pid, "returned"))
        state = await get_payout_state(env.client, pid)
        assert state.return_window_ends is not None
        # Another payout is not returned: after 14 days (skipped) it ends as paid.
        await start_payout(env.client, kept, seller, 500, task_queue=task_queue)
        await eventually(lambda: _status_is(engine, payouts, kept, "paid"))
        await env.sleep(timedelta(days=15))  # skipped: the return window ends
        await eventually(lambda: _closed(env.client, kept))
        assert (await get_payout_state(env.client, kept)).status == "paid"
    assert views(engine, payouts, seller) == (2_500, 2_500, 2_500)
    exactly_once(engine, bank, pid)
