"""Helpers of the schedule tests: sellers with available money in the real database, a payout
account, a stand-in payout workflow (named ``PayoutWorkflow``, the contract's name) that records
what it was asked to pay, and polling for what the worker does asynchronously."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from temporalio import workflow

from contracts.payouts import PAYOUT_WORKFLOW, PayoutWorkflowInput
from marketplace import Marketplace
from workflows.registry import WORKFLOWS

T = TypeVar("T")
PAID_ACCOUNT = "000123456789"


@workflow.defn(name=PAYOUT_WORKFLOW)
class StandInPayoutWorkflow:
    """Stands in for the payout workflow: returns its input, so a test sees what a run asked."""

    @workflow.run
    async def run(self, input: PayoutWorkflowInput) -> PayoutWorkflowInput:
        return input


def _workflow_name(cls: type[object]) -> str:
    defn = getattr(cls, "__temporal_workflow_definition", None)
    return str(getattr(defn, "name", ""))


def workflows_with_stand_in() -> list[type[object]]:
    """The registry's workflows, with the stand-in in place of a real payout workflow."""
    real = [w for w in WORKFLOWS if _workflow_name(w) != PAYOUT_WORKFLOW]
    return [*real, StandInPayoutWorkflow]


def new_seller(
    engine: Engine,
    *,
    available: int = 0,
    payout_account: bool = True,
    currency: str = "USD",
) -> str:
    """A seller with ``available`` minor units posted (earning booked and posted at once) and,
    if asked, a payout account."""
    seller_id = f"sched-{uuid.uuid4().hex[:10]}"
    market = Marketplace()
    with engine.begin() as conn:
        market.create_seller(
            conn,
            seller_id=seller_id,
            name="Schedule test",
            currency=currency,
            hold_period=timedelta(0),
        )
        if available:
            add_available(conn, market, seller_id, available)
        if payout_account:
            conn.execute(
                text(
                    "INSERT INTO payout_accounts (seller_id, account_number, routing_number,"
                    " holder_name) VALUES (:s, :a, '110000000', 'Test Holder')"
                ),
                {"s": seller_id, "a": PAID_ACCOUNT},
            )
    return seller_id


def add_available(conn: Connection, market: Marketplace, seller_id: str, amount: int) -> None:
    order_id = f"order-{uuid.uuid4().hex[:12]}"
    market.book_earning(conn, seller_id=seller_id, order_id=order_id, amount=amount)
    market.post_earning(conn, seller_id, order_id)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something other than None (or fail after ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"nothing after {timeout} s")
        await asyncio.sleep(interval)
