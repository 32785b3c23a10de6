"""Instant payouts through the payout workflow on the Temporal dev server (real time), with every
real activity and a simulated bank whose standard rail takes an hour: an instant payout is paid
in seconds with its fee booked, a destination without instant payments is refused with nothing
reserved, one that fails after submission (or that the rail refuses at submission) gives the
money and the fee back, the method shows as the ``PayoutMethod`` search attribute, and a worker
stopped while submitting pays exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from contracts.payouts import PAYOUT_METHOD, PAYOUT_STATUS, payout_workflow_id
from marketplace import InstantTerms, PlatformAccount
from marketplace.tables import payouts as payouts_table
from payment_rail import (
    ACCOUNT_INSTANT_FAILS,
    ACCOUNT_NO_INSTANT,
    INSTANT_NOT_SUPPORTED,
    RailMethod,
    RailOutcome,
    RailSettings,
    SimulatedBank,
)
from temporal_calls.errors import WorkflowRequestError
from temporal_calls.payouts import start_payout
from tests.helpers import eventually, ledger_transaction_count
from tests.payouts.conftest import SECRET, BankWebhooks, PayoutEnv

STANDARD_SETTLE = 3_600.0  # the batch rail: an hour
FEE = InstantTerms().fee  # the platform's default terms, which the test worker charges


@pytest.fixture
def bank(webhooks: BankWebhooks) -> Iterator[SimulatedBank]:
    settings = RailSettings(
        settle_seconds=STANDARD_SETTLE,
        instant_settle_seconds=1.0,
        return_seconds=1.0,
        webhook_secret=SECRET,
        webhook_retry_seconds=0.2,
    )
    with SimulatedBank(settings, webhook_transport=webhooks) as simulated:
        yield simulated


def fees_posted(env: PayoutEnv) -> int:
    with env.engine.begin() as conn:
        platform = env.payouts.marketplace.platform_ledger(conn, "USD", livemode=True)
        account = env.payouts.ledger.get_account(
            conn, platform.account(PlatformAccount.FEES_REVENUE)
        )
    return account.balances.posted.amount


def fees_pending(env: PayoutEnv) -> int:
    with env.engine.begin() as conn:
        platform = env.payouts.marketplace.platform_ledger(conn, "USD", livemode=True)
        account = env.payouts.ledger.get_account(
            conn, platform.account(PlatformAccount.FEES_REVENUE)
        )
    return account.balances.pending.amount


async def test_an_instant_payout_is_paid_in_seconds_while_standard_ones_wait(
    payout_env: PayoutEnv, uid: str
) -> None:
    seller, rtp, std = f"s-{uid}", f"i-{uid}", f"p-{uid}"
    payout_env.seller_with_available(seller, 30_000)
    async with payout_env.worker():
        await start_payout(payout_env.client, std, seller, 10_000, task_queue=payout_env.task_queue)
        payout = await start_payout(
            payout_env.client,
            rtp,
            seller,
            10_000,
            task_queue=payout_env.task_queue,
            method="instant",
        )
        fee = FEE(10_000)
        assert (payout.method, payout.amount, payout.fee, payout.status) == (
            "instant",
            10_000,
            fee,
            "pending",
        )
        # Both reserved; the instant one also its fee.
        assert payout_env.views(seller)[2] == 30_000 - 10_000 - 10_000 - fee
        # Paid by the real-time rail (it settles in about a second) while the batch rail, which
        # takes an hour, still has the standard one: no duration asserted, a busy machine is slow.
        await eventually(lambda: payout_env.assert_status(rtp, "paid"), timeout=60)
        assert payout_env.payout_status(std) == "processing"
        handle = payout_env.client.get_workflow_handle(payout_workflow_id(rtp))

        async def paid_in_the_ui() -> None:
            # The workflow sets its status attribute once the activity that recorded the
            # payout paid has returned: a moment after the database says so.
            attributes = (await handle.describe()).typed_search_attributes
            assert attributes.get(PAYOUT_METHOD) == "instant"
            assert attributes.get(PAYOUT_STATUS) == "paid"

        await eventually(paid_in_the_ui, timeout=30)
        standard = await payout_env.client.get_workflow_handle(payout_workflow_id(std)).describe()
        assert standard.typed_search_attributes.get(PAYOUT_METHOD) == "standard"
        final = await handle.result()
    assert (final["status"], final["payout"]["fee"]) == ("paid", fee)
    assert payout_env.bank.inspect(rtp).request.method is RailMethod.INSTANT
    payout_env.exactly_once(rtp)
    # Paid: posted drops by amount + fee; the standard payout is still in transit.
    assert payout_env.views(seller) == (
        30_000 - 10_000 - 10_000 - fee,
        30_000 - 10_000 - fee,
        30_000 - 10_000 - 10_000 - fee,
    )


async def test_a_destination_without_instant_payments_is_refused_with_nothing_reserved(
    payout_env: PayoutEnv, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"i-{uid}"
    payout_env.seller_with_available(seller, 8_000, account_number=ACCOUNT_NO_INSTANT)
    pending_fees = fees_pending(payout_env)
    async with payout_env.worker():
        with pytest.raises(WorkflowRequestError) as refused:
            await start_payout(
                payout_env.client, pid, seller, task_queue=payout_env.task_queue, method="instant"
            )
    assert refused.value.code == INSTANT_NOT_SUPPORTED
    assert payout_env.views(seller) == (8_000, 8_000, 8_000)
    assert ledger_transaction_count(payout_env.engine, f"payout:{pid}") == 0
    with payout_env.engine.connect() as conn:
        assert conn.execute(select(payouts_table).where(payouts_table.c.id == pid)).first() is None
    assert fees_pending(payout_env) == pending_fees
    assert payout_env.bank.list_payouts() == []  # never submitted


async def test_an_instant_payout_that_fails_gives_the_money_and_the_fee_back(
    payout_env: PayoutEnv, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"i-{uid}"
    payout_env.seller_with_available(seller, 6_000, account_number=ACCOUNT_INSTANT_FAILS)
    posted_fees = fees_posted(payout_env)
    async with payout_env.worker():
        payout = await start_payout(
            payout_env.client, pid, seller, task_queue=payout_env.task_queue, method="instant"
        )
        assert payout.amount + payout.fee == 6_000  # everything available, the fee included
        assert payout_env.views(seller)[2] == 0
        final = await payout_env.client.get_workflow_handle(payout_workflow_id(pid)).result()
    assert (final["status"], final["payout"]["failure_code"]) == ("failed", "instant_declined")
    assert payout_env.views(seller) == (6_000, 6_000, 6_000)
    assert fees_posted(payout_env) == posted_fees
    assert payout_env.bank.paid_count(pid) == 0
    with payout_env.engine.begin() as conn:
        account = payout_env.payouts.get_payout_account(conn, seller)
    assert account.status == "active"  # not a dead account: standard payouts still reach it


async def test_a_rail_refusing_at_submission_fails_the_payout_and_gives_everything_back(
    payout_env: PayoutEnv, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"i-{uid}"
    payout_env.seller_with_available(seller, 4_000)
    # The eligibility check said yes; by submission the rail says no.
    payout_env.bank.force_outcome(pid, RailOutcome.REJECTED, code=INSTANT_NOT_SUPPORTED)
    async with payout_env.worker():
        await start_payout(
            payout_env.client,
            pid,
            seller,
            3_000,
            task_queue=payout_env.task_queue,
            method="instant",
        )
        final = await payout_env.client.get_workflow_handle(payout_workflow_id(pid)).result()
    assert (final["status"], final["payout"]["failure_code"]) == ("failed", INSTANT_NOT_SUPPORTED)
    assert payout_env.views(seller) == (4_000, 4_000, 4_000)
    assert payout_env.bank.paid_count(pid) == 0


async def test_worker_stopped_while_submitting_an_instant_payout_pays_once(
    payout_env: PayoutEnv, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"i-{uid}"
    payout_env.seller_with_available(seller, 7_000)
    fee = FEE(5_000)
    # Reserved, then the rail is down: the worker stops while submission keeps failing.
    payout_env.bank.make_unavailable(1_000)
    async with payout_env.worker():
        await start_payout(
            payout_env.client,
            pid,
            seller,
            5_000,
            task_queue=payout_env.task_queue,
            method="instant",
        )
        await asyncio.sleep(1.5)
    assert payout_env.payout_status(pid) == "pending"
    assert payout_env.views(seller) == (2_000 - fee, 7_000, 2_000 - fee)
    # The rail is back and loses its first answer after storing the payout; the payout waits at
    # the bank while no worker runs.
    payout_env.bank.make_unavailable(0)
    payout_env.bank.make_unavailable(1, after_processing=True)
    payout_env.bank.force_outcome(pid, RailOutcome.NEVER_SETTLES)
    async with payout_env.worker():
        await eventually(lambda: payout_env.assert_status(pid, "processing"))
    payout_env.bank.force_outcome(pid, RailOutcome.PAID)
    payout_env.bank.settle_now(pid)
    async with payout_env.worker():
        await eventually(lambda: payout_env.assert_status(pid, "paid"))
        final = await payout_env.client.get_workflow_handle(payout_workflow_id(pid)).result()
    assert final["status"] == "paid"
    payout_env.exactly_once(pid)
    assert payout_env.bank.inspect(pid).submissions >= 2
    assert payout_env.views(seller) == (2_000 - fee,) * 3
