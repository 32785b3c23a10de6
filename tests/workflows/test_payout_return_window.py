"""The payout workflow's return window on the time-skipping server (here, next to the other
time-skipping tests, which share the server's search-attribute registration): a return inside
the window reverses the payout, also one returned 3 days after it was paid (by its webhook, or,
with the webhook lost, by the workflow's daily poll); a payout not returned ends as paid once 14
days have passed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus

from contracts.payouts import PayoutWorkflowState, payout_workflow_id
from marketplace import Payouts
from payment_rail import ACCOUNT_RETURNED, RailOutcome, RailSettings, SimulatedBank
from temporal_calls.payouts import get_payout_state, start_payout
from tests.helpers import eventually, ledger_transaction_count
from tests.payouts.conftest import (
    SECRET,
    BankWebhooks,
    PayoutEnv,
    bank,
    payout_env,
    payouts,
    seller_with_available,
    webhooks,
)
from tests.temporal_env import SkippingEnv

__all__ = ["bank", "payout_env", "payouts", "webhooks"]


@pytest.fixture
def temporal_client(skipping_env: SkippingEnv) -> Client:
    """The client ``payout_env`` uses: here, the time-skipping server's."""
    return skipping_env.client


async def _closed(client: Client, payout_id: str, timeout: float = 15.0) -> None:
    """Wait until the payout workflow has completed."""
    handle = client.get_workflow_handle(payout_workflow_id(payout_id))
    deadline = asyncio.get_running_loop().time() + timeout
    while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
        assert asyncio.get_running_loop().time() < deadline, f"{payout_id} still running"
        await asyncio.sleep(0.05)


async def test_return_window_on_the_time_skipping_server(
    skipping_env: SkippingEnv, payout_env: PayoutEnv, uid: str
) -> None:
    env, seller, pid, kept = skipping_env, f"s-{uid}", f"p-{uid}", f"k-{uid}"
    payout_env.seller_with_available(seller, 3_000, account_number=ACCOUNT_RETURNED)
    payout_env.bank.force_outcome(kept, RailOutcome.PAID)
    async with payout_env.worker(return_window_seconds=14 * 86_400):
        # Paid, then returned by the bank (its return account) inside the window.
        await start_payout(payout_env.client, pid, seller, 1_000, task_queue=payout_env.task_queue)
        await eventually(lambda: payout_env.assert_status(pid, "returned"))
        state = await get_payout_state(env.client, pid)
        assert state.return_window_ends is not None
        # Another payout is not returned: after 14 days (skipped) it ends as paid.
        await start_payout(payout_env.client, kept, seller, 500, task_queue=payout_env.task_queue)
        await eventually(lambda: payout_env.assert_status(kept, "paid"))
        await env.sleep(timedelta(days=15))  # skipped: the return window ends
        await _closed(env.client, kept)
        assert (await get_payout_state(env.client, kept)).status == "paid"
    assert payout_env.views(seller) == (2_500, 2_500, 2_500)
    payout_env.exactly_once(pid)


DAY = 86_400


async def _returned_and_closed(payout_env: PayoutEnv, pid: str) -> PayoutWorkflowState:
    await eventually(lambda: payout_env.assert_status(pid, "returned"))
    await _closed(payout_env.client, pid)
    return await get_payout_state(payout_env.client, pid)


async def test_a_return_three_days_after_paid_reaches_the_workflow_by_webhook(
    skipping_env: SkippingEnv, payout_env: PayoutEnv, uid: str
) -> None:
    env, seller, pid = skipping_env, f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 3_000)  # ACCOUNT_PAID: never returned by itself
    async with payout_env.worker(return_window_seconds=14 * DAY):
        await start_payout(payout_env.client, pid, seller, 1_000, task_queue=payout_env.task_queue)
        await eventually(lambda: payout_env.assert_status(pid, "paid"))
        paid_at = await env.get_current_time()
        assert payout_env.views(seller) == (2_000, 2_000, 2_000)
        await env.sleep(timedelta(days=3))  # skipped; the daily polls hear "paid"
        assert await env.get_current_time() - paid_at >= timedelta(days=3)
        assert (await get_payout_state(env.client, pid)).status == "paid"
        payout_env.bank.return_payout(pid, code="no_account")  # the webhook signals the workflow
        state = await _returned_and_closed(payout_env, pid)
    assert state.status == "returned" and state.rail_events == 2
    assert state.payout is not None and state.payout.failure_code == "no_account"
    assert state.payout.return_transaction_id is not None
    assert ledger_transaction_count(payout_env.engine, f"payout:{pid}:return") == 1  # one reversal
    assert payout_env.views(seller) == (3_000, 3_000, 3_000)  # credited back
    payout_env.exactly_once(pid)


async def test_a_return_three_days_later_without_webhook_is_found_by_the_daily_poll(
    skipping_env: SkippingEnv,
    engine: Engine,
    payouts: Payouts,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    """The bank returns the payout by itself 3 days after paying it, and the return's webhook is
    lost. The bank's clock is the real clock (it does not follow the time-skipping server), so
    the test moves it by what the server skipped; only the workflow's daily poll can find out."""
    env, seller, pid = skipping_env, f"s-{uid}", f"p-{uid}"
    settings = RailSettings(
        settle_seconds=0.5,
        return_seconds=3 * DAY,
        webhook_secret=SECRET,
        webhook_retry_seconds=0.2,
    )
    seller_with_available(engine, payouts, seller, 3_000, account_number=ACCOUNT_RETURNED)
    with SimulatedBank(settings, webhook_transport=webhooks) as bank:
        payout_env = PayoutEnv(env.client, engine, payouts, bank, webhooks, task_queue)
        async with payout_env.worker(return_window_seconds=14 * DAY):
            await start_payout(
                payout_env.client, pid, seller, 1_000, task_queue=payout_env.task_queue
            )
            await eventually(lambda: payout_env.assert_status(pid, "paid"))
            bank.drop_webhooks(payout_id=pid)  # the return's webhook never arrives
            await env.sleep(timedelta(days=2))
            bank.advance_clock(2 * DAY)
            assert bank.inspect(pid).status.status == "paid"  # not returned yet
            assert (await get_payout_state(env.client, pid)).status == "paid"
            bank.advance_clock(DAY + 60)  # the bank returns it, 3 days after paying it
            assert bank.inspect(pid).status.status == "returned"
            await env.sleep(timedelta(days=1, hours=1))  # the next daily poll
            state = await _returned_and_closed(payout_env, pid)
        [paid, returned] = bank.inspect(pid).webhooks
        assert (paid.state, returned.state) == ("delivered", "dropped")
        payout_env.exactly_once(pid)
    assert state.status == "returned" and state.rail_events == 1 and state.rail_polls >= 2
    assert state.payout is not None and state.payout.failure_code == "no_account"
    assert ledger_transaction_count(payout_env.engine, f"payout:{pid}:return") == 1
    assert payout_env.views(seller) == (3_000, 3_000, 3_000)
