"""Exactly once: a worker stopped at each step, a duplicate webhook, a rail that fails the first
calls (also after storing the payout), a duplicate request, and refunds through the workflows;
each pays once (the bank's paid count), writes one payout transaction, and leaves no money
stuck (balances settle). (The return window on the
time-skipping server: tests/workflows/test_payout_return_window.py.)"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy

from contracts.payouts import (
    RefundEarningInput,
    RefundResult,
    payout_workflow_id,
    refund_workflow_id,
)
from marketplace import Payouts
from payment_rail import RailOutcome, SimulatedBank
from temporal_calls.payouts import start_payout
from tests.payouts.conftest import (
    BankWebhooks,
    assert_status,
    exactly_once,
    payout_status,
    payout_worker,
    seller_with_available,
    views,
)
from tests.workflows.conftest import eventually
from workflows.refunds import RefundWorkflow


async def test_worker_stopped_at_each_step_pays_once(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    seller_with_available(engine, payouts, seller, 7_000)
    # Reserved, then the rail is down: the worker stops while submission keeps failing.
    bank.make_unavailable(1_000)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        await start_payout(temporal_client, pid, seller, task_queue=task_queue)
        await asyncio.sleep(1.5)
    assert payout_status(engine, payouts, pid) == "pending"
    assert views(engine, payouts, seller) == (0, 7_000, 0)
    # The rail is back, and loses its first answer after storing the payout.
    bank.make_unavailable(0)
    bank.make_unavailable(1, after_processing=True)
    bank.force_outcome(pid, RailOutcome.NEVER_SETTLES)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        await eventually(lambda: assert_status(engine, payouts, pid, "processing"))
    # Submitted; the worker is down while the rail pays and its webhook arrives.
    bank.force_outcome(pid, RailOutcome.PAID)
    bank.settle_now(pid)
    await eventually(lambda: _assert_delivered(webhooks))
    assert payout_status(engine, payouts, pid) == "processing"
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        await eventually(lambda: assert_status(engine, payouts, pid, "paid"))
        final = await temporal_client.get_workflow_handle(payout_workflow_id(pid)).result()
    assert final["status"] == "paid"
    exactly_once(engine, bank, pid)
    assert bank.inspect(pid).submissions >= 2  # resubmitted after the lost answer: paid once
    assert views(engine, payouts, seller) == (0, 0, 0)


async def _closed(client: Client, payout_id: str) -> None:
    description = await client.get_workflow_handle(payout_workflow_id(payout_id)).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED


def _assert_delivered(webhooks: BankWebhooks) -> None:
    assert webhooks.delivered >= 1


async def test_duplicate_webhooks_and_duplicate_requests(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, pid = f"s-{uid}", f"p-{uid}"
    seller_with_available(engine, payouts, seller, 2_000)
    bank.duplicate_webhooks(5, payout_id=pid, copies=3)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        first, second = await asyncio.gather(
            start_payout(temporal_client, pid, seller, task_queue=task_queue),
            start_payout(temporal_client, pid, seller, task_queue=task_queue),
        )
        assert first.amount == second.amount == 2_000
        final = await temporal_client.get_workflow_handle(payout_workflow_id(pid)).result()
    assert final["status"] == "paid"
    assert webhooks.delivered >= 3 and final["rail_events"] == 1
    exactly_once(engine, bank, pid)
    assert views(engine, payouts, seller) == (0, 0, 0)


async def refund_earning(
    client: Client,
    seller_id: str,
    order_id: str,
    refund_id: str,
    amount: int | None = None,
    *,
    task_queue: str,
) -> RefundResult:
    """A refund as an earlier release made it, by a ``RefundWorkflow`` run (the API writes
    refunds itself now; the workflow stays for the runs such a release started)."""
    result: RefundResult = await client.execute_workflow(
        RefundWorkflow.run,
        RefundEarningInput(
            refund_id=refund_id, seller_id=seller_id, order_id=order_id, amount=amount
        ),
        id=refund_workflow_id(refund_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return result


async def test_refunds_through_the_workflows(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
    uid: str,
) -> None:
    seller, held = f"s-{uid}", f"h-{uid}"
    posted = f"o-{seller}"
    seller_with_available(engine, payouts, seller, 5_000)
    async with payout_worker(temporal_client, engine, bank, webhooks, task_queue=task_queue):
        with engine.begin() as conn:
            booked = payouts.marketplace.book_earning(
                conn, seller_id=seller, order_id=held, amount=1_000, fee=100
            )
        # During the hold: partial, then the rest; the hold keeps its end, then is dropped.
        part = await refund_earning(
            temporal_client, seller, held, f"r1-{uid}", 400, task_queue=task_queue
        )
        assert (part.kind, part.earning.status) == ("during_hold", "on_hold")
        with engine.begin() as conn:
            [hold] = payouts.marketplace.list_holds(conn, seller).items
        assert hold.ledger_transaction_id == uuid.UUID(part.earning.ledger_transaction_id)
        assert hold.hold_until == booked.hold_until and hold.amount_held == 900 - 360
        again = await refund_earning(
            temporal_client, seller, held, f"r1-{uid}", 400, task_queue=task_queue
        )
        assert again.ledger_transaction_id == part.ledger_transaction_id
        rest = await refund_earning(
            temporal_client, seller, held, f"r2-{uid}", task_queue=task_queue
        )
        assert (rest.amount, rest.earning.status) == (600, "cancelled")
        with engine.begin() as conn:
            assert payouts.marketplace.list_holds(conn, seller).items == []
        # After posting: a refund workflow debits the seller, below zero if need be.
        await start_payout(temporal_client, f"p-{uid}", seller, 4_000, task_queue=task_queue)
        after = await refund_earning(
            temporal_client, seller, posted, f"r3-{uid}", task_queue=task_queue
        )
        assert (after.kind, after.seller_amount) == ("after_posting", 5_000)
        await eventually(lambda: assert_status(engine, payouts, f"p-{uid}", "paid"))
    assert views(engine, payouts, seller) == (-4_000, -4_000, -4_000)
