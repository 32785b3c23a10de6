"""The payout workflow on the Temporal dev server (real time) with every real activity and the
simulated bank: paid, failed, returned, no webhook (the status poll finds out), cancel, and the
errors a client hears synchronously. Balances are checked at each step."""

from __future__ import annotations

import pytest

from contracts.payouts import payout_workflow_id
from payment_rail import ACCOUNT_CLOSED, ACCOUNT_NO_WEBHOOK, ACCOUNT_RETURNED, RailOutcome
from temporal_calls.errors import WorkflowRequestError
from temporal_calls.payouts import cancel_payout, get_payout_state, start_payout
from temporal_calls.schedules import (
    delete_payout_schedule,
    describe_payout_schedule,
    put_payout_schedule,
)
from tests.helpers import eventually, ledger_transaction_count
from tests.payouts.conftest import PayoutEnv


async def test_paid_payout(payout_env: PayoutEnv, uid: str) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 9_000)
    async with payout_env.worker():
        payout = await start_payout(
            payout_env.client, pid, seller, task_queue=payout_env.task_queue
        )
        assert (payout.status, payout.amount) == ("pending", 9_000)
        assert payout.account_number_masked.endswith("6789") and "0001234" not in str(payout)
        # Reserved: available drops, posted not yet.
        assert payout_env.views(seller)[1:] == (9_000, 0)

        async def paid() -> None:
            assert payout_env.payout_status(pid) == "paid"

        await eventually(paid)
        assert payout_env.views(seller) == (0, 0, 0)
        handle = payout_env.client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
        assert final["status"] == "paid" and final["rail_events"] == 1
        # A repeat answers with the reservation again, and moves nothing.
        again = await start_payout(payout_env.client, pid, seller, task_queue=payout_env.task_queue)
        assert (again.id, again.amount) == (pid, 9_000)
    payout_env.exactly_once(pid)


async def test_failed_payout_gives_the_money_back(payout_env: PayoutEnv, uid: str) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 5_000, account_number=ACCOUNT_CLOSED)
    async with payout_env.worker():
        await start_payout(payout_env.client, pid, seller, 2_000, task_queue=payout_env.task_queue)
        assert payout_env.views(seller) == (3_000, 5_000, 3_000)
        handle = payout_env.client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
    assert final["status"] == "failed"
    assert final["payout"]["failure_code"] == "account_closed"
    assert payout_env.views(seller) == (5_000, 5_000, 5_000)
    assert payout_env.bank.paid_count(pid) == 0


async def test_a_closed_account_fails_the_account_and_pauses_the_schedule(
    payout_env: PayoutEnv, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 5_000, account_number=ACCOUNT_CLOSED)
    await put_payout_schedule(
        payout_env.client, seller, interval="daily", task_queue=payout_env.task_queue
    )
    try:
        async with payout_env.worker():
            await start_payout(payout_env.client, pid, seller, task_queue=payout_env.task_queue)
            handle = payout_env.client.get_workflow_handle(payout_workflow_id(pid))
            final = await handle.result()
        assert (final["status"], final["payout"]["failure_code"]) == ("failed", "account_closed")
        assert final["schedule_paused"] is True
        schedule = await describe_payout_schedule(payout_env.client, seller)
        assert schedule.paused
        assert schedule.note == (
            f"payout {pid} failed: account_closed; set a new payout account, then resume"
        )
        with payout_env.engine.begin() as conn:
            account = payout_env.payouts.get_payout_account(conn, seller)
        assert (account.status, account.failure_code, account.failed_payout_id) == (
            "failed",
            "account_closed",
            pid,
        )
        assert payout_env.views(seller) == (5_000, 5_000, 5_000)
    finally:
        await delete_payout_schedule(payout_env.client, seller)


async def test_a_destination_the_rail_refuses_fails_the_account(
    payout_env: PayoutEnv, uid: str
) -> None:
    """The rail refuses the number at submission (no webhook, no poll): the same outcome."""
    seller, pid = f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 2_000)
    payout_env.bank.force_outcome(pid, RailOutcome.REJECTED, code="invalid_destination")
    async with payout_env.worker():
        await start_payout(payout_env.client, pid, seller, task_queue=payout_env.task_queue)
        final = await payout_env.client.get_workflow_handle(payout_workflow_id(pid)).result()
    assert (final["status"], final["payout"]["failure_code"]) == ("failed", "invalid_destination")
    assert final["schedule_paused"] is False  # this seller has no payout schedule
    with payout_env.engine.begin() as conn:
        account = payout_env.payouts.get_payout_account(conn, seller)
    assert (account.status, account.failure_code) == ("failed", "invalid_destination")


async def test_an_unavailable_rail_fails_nothing_and_pauses_nothing(
    payout_env: PayoutEnv, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 3_000)
    await put_payout_schedule(
        payout_env.client, seller, interval="daily", task_queue=payout_env.task_queue
    )
    try:
        # The rail is down for the first submissions: the workflow retries with the same id.
        payout_env.bank.make_unavailable(2)
        async with payout_env.worker():
            await start_payout(payout_env.client, pid, seller, task_queue=payout_env.task_queue)
            handle = payout_env.client.get_workflow_handle(payout_workflow_id(pid))
            final = await handle.result()
        assert final["status"] == "paid" and final["schedule_paused"] is None
        assert not (await describe_payout_schedule(payout_env.client, seller)).paused
        with payout_env.engine.begin() as conn:
            account = payout_env.payouts.get_payout_account(conn, seller)
        assert (account.status, account.failure_code) == ("active", None)
        payout_env.exactly_once(pid)
    finally:
        await delete_payout_schedule(payout_env.client, seller)


async def test_returned_payout_credits_the_seller_back(payout_env: PayoutEnv, uid: str) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 4_000, account_number=ACCOUNT_RETURNED)
    async with payout_env.worker(return_window_seconds=60):
        await start_payout(payout_env.client, pid, seller, task_queue=payout_env.task_queue)
        handle = payout_env.client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
    assert final["status"] == "returned"
    assert final["payout"]["failure_code"] == "no_account"
    assert final["schedule_paused"] is False  # this seller has no payout schedule
    assert payout_env.views(seller) == (4_000, 4_000, 4_000)
    assert ledger_transaction_count(payout_env.engine, f"payout:{pid}:return") == 1
    payout_env.exactly_once(pid)


async def test_no_webhook_the_status_poll_finds_out(payout_env: PayoutEnv, uid: str) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 1_000, account_number=ACCOUNT_NO_WEBHOOK)
    async with payout_env.worker(poll_seconds=0.5):
        await start_payout(payout_env.client, pid, seller, task_queue=payout_env.task_queue)
        handle = payout_env.client.get_workflow_handle(payout_workflow_id(pid))
        final = await handle.result()
    assert final["status"] == "paid"
    assert final["rail_events"] == 0 and final["rail_polls"] >= 1
    assert payout_env.views(seller) == (0, 0, 0)
    payout_env.exactly_once(pid)


async def test_cancel_before_submission_and_refused_after(payout_env: PayoutEnv, uid: str) -> None:
    seller, pid, late = f"s-{uid}", f"p-{uid}", f"q-{uid}"
    payout_env.seller_with_available(seller, 3_000)
    async with payout_env.worker():
        await start_payout(
            payout_env.client,
            pid,
            seller,
            1_000,
            submit_after_seconds=600,
            task_queue=payout_env.task_queue,
        )
        assert payout_env.views(seller) == (2_000, 3_000, 2_000)
        cancelled = await cancel_payout(payout_env.client, pid)
        assert cancelled.status == "cancelled"
        assert payout_env.views(seller) == (3_000, 3_000, 3_000)
        assert (await get_payout_state(payout_env.client, pid)).status == "cancelled"
        assert (await cancel_payout(payout_env.client, pid)).status == "cancelled"  # again: same

        payout_env.bank.force_outcome(late, RailOutcome.NEVER_SETTLES)
        await start_payout(payout_env.client, late, seller, 500, task_queue=payout_env.task_queue)

        async def processing() -> None:
            assert payout_env.payout_status(late) == "processing"

        await eventually(processing)
        with pytest.raises(WorkflowRequestError) as refused:
            await cancel_payout(payout_env.client, late)
        assert refused.value.code == "invalid_payout_state"
        payout_env.bank.force_outcome(late, RailOutcome.PAID)
        await eventually(lambda: payout_env.assert_status(late, "paid"))
    assert all(p.request.payout_id != pid for p in payout_env.bank.list_payouts())
    payout_env.exactly_once(late)
    assert payout_env.views(seller) == (2_500, 2_500, 2_500)


async def test_business_errors_are_answered_synchronously(payout_env: PayoutEnv, uid: str) -> None:
    seller = f"s-{uid}"
    payout_env.seller_with_available(seller, 0)
    async with payout_env.worker():
        for attempt in range(2):  # a repeat gets the same answer
            with pytest.raises(WorkflowRequestError) as nothing:
                await start_payout(
                    payout_env.client, f"p-{uid}", seller, task_queue=payout_env.task_queue
                )
            assert nothing.value.code == "nothing_to_pay", attempt
        with pytest.raises(WorkflowRequestError) as too_much:
            await start_payout(
                payout_env.client, f"q-{uid}", seller, 10, task_queue=payout_env.task_queue
            )
        assert too_much.value.code == "insufficient_balance"
        state = await get_payout_state(payout_env.client, f"q-{uid}")
        assert (state.status, state.error_code, state.payout) == (
            "failed",
            "insufficient_balance",
            None,
        )
        with payout_env.engine.begin() as conn:
            payout_env.payouts.marketplace.create_seller(
                conn, seller_id=f"t-{uid}", name="x", currency="USD"
            )
        with pytest.raises(WorkflowRequestError) as missing:
            await start_payout(
                payout_env.client, f"r-{uid}", f"t-{uid}", task_queue=payout_env.task_queue
            )
        assert missing.value.code == "payout_account_missing"
        with pytest.raises(WorkflowRequestError) as unknown:
            await get_payout_state(payout_env.client, f"none-{uid}")
        assert unknown.value.code == "payout_not_found"
