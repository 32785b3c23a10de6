"""The payout workflow on the Temporal dev server (real time) with every real activity and the
simulated bank: paid, failed, returned, no webhook (the status poll finds out), cancel, and the
errors a client hears synchronously. Balances are checked at each step."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from contracts.payouts import payout_workflow_id
from marketplace import Payouts
from payment_rail import (
    ACCOUNT_CLOSED,
    ACCOUNT_NO_WEBHOOK,
    ACCOUNT_RETURNED,
    RailOutcome,
    SimulatedBank,
)
from temporal_calls.errors import WorkflowRequestError
from temporal_calls.payouts import cancel_payout, get_payout_state, start_payout
from tests.payouts.conftest import (
    BankWebhooks,
    assert_status,
    exactly_once,
    ledger_count,
    payout_status,
    payout_worker,
    seller_with_available,
    views,
)
from tests.workflows.conftest import eventually


async def test_paid_payout(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    seller_with_available(engine, payouts, seller, 9_000)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        payout = await start_payout(temporal_client, pid, seller, task_queue=task_queue)
        assert (payout.status, payout.amount) == ("pending", 9_000)
        assert payout.account_number_masked.endswith("6789") and "0001234" not in str(payout)
        # Reserved: available drops, posted not yet.
        assert views(engine, payouts, seller)[1:] == (9_000, 0)

        async def paid() -> None:
            assert payout_status(engine, payouts, pid) == "paid"

        await eventually(paid)
        assert views(engine, payouts, seller) == (0, 0, 0)
        handle = temporal_client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
        assert final["status"] == "paid" and final["rail_events"] == 1
        # A repeat answers with the reservation again, and moves nothing.
        again = await start_payout(temporal_client, pid, seller, task_queue=task_queue)
        assert (again.id, again.amount) == (pid, 9_000)
    exactly_once(engine, bank, pid)


async def test_failed_payout_gives_the_money_back(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    seller_with_available(engine, payouts, seller, 5_000, account_number=ACCOUNT_CLOSED)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        await start_payout(temporal_client, pid, seller, 2_000, task_queue=task_queue)
        assert views(engine, payouts, seller) == (3_000, 5_000, 3_000)
        handle = temporal_client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
    assert final["status"] == "failed"
    assert final["payout"]["failure_code"] == "account_closed"
    assert views(engine, payouts, seller) == (5_000, 5_000, 5_000)
    assert bank.paid_count(pid) == 0


async def test_returned_payout_credits_the_seller_back(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    seller_with_available(engine, payouts, seller, 4_000, account_number=ACCOUNT_RETURNED)
    async with payout_worker(
        temporal_client, engine, bank, webhooks, task_queue=task_queue, return_window_seconds=60
    ):
        await start_payout(temporal_client, pid, seller, task_queue=task_queue)
        handle = temporal_client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
    assert final["status"] == "returned"
    assert final["payout"]["failure_code"] == "no_account"
    assert final["schedule_paused"] is False  # this seller has no payout schedule
    assert views(engine, payouts, seller) == (4_000, 4_000, 4_000)
    assert ledger_count(engine, f"payout:{pid}:return") == 1
    exactly_once(engine, bank, pid)


async def test_no_webhook_the_status_poll_finds_out(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    seller_with_available(engine, payouts, seller, 1_000, account_number=ACCOUNT_NO_WEBHOOK)
    async with payout_worker(
        temporal_client, engine, bank, webhooks, task_queue=task_queue, poll_seconds=0.5
    ):
        await start_payout(temporal_client, pid, seller, task_queue=task_queue)
        handle = temporal_client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
    assert final["status"] == "paid"
    assert final["rail_events"] == 0 and final["rail_polls"] >= 1
    assert views(engine, payouts, seller) == (0, 0, 0)
    exactly_once(engine, bank, pid)


async def test_cancel_before_submission_and_refused_after(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, pid, late = f"s-{uid}", f"p-{uid}", f"q-{uid}"
    seller_with_available(engine, payouts, seller, 3_000)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        await start_payout(
            temporal_client, pid, seller, 1_000, submit_after_seconds=600, task_queue=task_queue
        )
        assert views(engine, payouts, seller) == (2_000, 3_000, 2_000)
        cancelled = await cancel_payout(temporal_client, pid)
        assert cancelled.status == "cancelled"
        assert views(engine, payouts, seller) == (3_000, 3_000, 3_000)
        assert (await get_payout_state(temporal_client, pid)).status == "cancelled"
        assert (await cancel_payout(temporal_client, pid)).status == "cancelled"  # again: same

        bank.force_outcome(late, RailOutcome.NEVER_SETTLES)
        await start_payout(temporal_client, late, seller, 500, task_queue=task_queue)

        async def processing() -> None:
            assert payout_status(engine, payouts, late) == "processing"

        await eventually(processing)
        with pytest.raises(WorkflowRequestError) as refused:
            await cancel_payout(temporal_client, late)
        assert refused.value.code == "invalid_payout_state"
        bank.force_outcome(late, RailOutcome.PAID)
        await eventually(lambda: assert_status(engine, payouts, late, "paid"))
    assert all(p.request.payout_id != pid for p in bank.list_payouts())
    exactly_once(engine, bank, late)
    assert views(engine, payouts, seller) == (2_500, 2_500, 2_500)


async def test_business_errors_are_answered_synchronously(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller = f"s-{uid}"
    seller_with_available(engine, payouts, seller, 0)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        for attempt in range(2):  # a repeat gets the same answer
            with pytest.raises(WorkflowRequestError) as nothing:
                await start_payout(temporal_client, f"p-{uid}", seller, task_queue=task_queue)
            assert nothing.value.code == "nothing_to_pay", attempt
        with pytest.raises(WorkflowRequestError) as too_much:
            await start_payout(temporal_client, f"q-{uid}", seller, 10, task_queue=task_queue)
        assert too_much.value.code == "insufficient_balance"
        state = await get_payout_state(temporal_client, f"q-{uid}")
        assert (state.status, state.error_code, state.payout) == (
            "failed",
            "insufficient_balance",
            None,
        )
        with engine.begin() as conn:
            payouts.marketplace.create_seller(conn, seller_id=f"t-{uid}", name="x", currency="USD")
        with pytest.raises(WorkflowRequestError) as missing:
            await start_payout(temporal_client, f"r-{uid}", f"t-{uid}", task_queue=task_queue)
        assert missing.value.code == "payout_account_missing"
        with pytest.raises(WorkflowRequestError) as unknown:
            await get_payout_state(temporal_client, f"none-{uid}")
        assert unknown.value.code == "payout_not_found"
