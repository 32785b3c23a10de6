"""Helpers of the payout tests: a worker whose payout activities use a simulated bank of the
test's own (the only stand-in: it is the outside world), whose webhooks reach the payout
workflows as the API would hand them over (signature verified, then signalled)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import Engine, func, select
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import build_activities
from ledger_core.schema import ledger_transactions
from marketplace import Marketplace, Payouts, SellerBalances
from payment_rail import (
    ACCOUNT_PAID,
    SIGNATURE_HEADER,
    TEST_ROUTING_NUMBER,
    RailSettings,
    SimulatedBank,
    construct_event,
)
from tests.temporal_env import running_worker
from workflows.payout_client import signal_rail_event

SECRET = "whsec_test"


@pytest.fixture(scope="session")
def payouts() -> Payouts:
    return Payouts(Marketplace())


class BankWebhooks:
    """Delivers the bank's signed webhooks to the payout workflows, like /v1/rail/webhooks."""

    def __init__(self) -> None:
        self.client: Client | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> None:
        event = construct_event(SECRET, headers.get(SIGNATURE_HEADER), body)
        if self.client is None or self.loop is None:
            raise RuntimeError("no receiver yet")  # the bank retries later
        future = asyncio.run_coroutine_threadsafe(signal_rail_event(self.client, event), self.loop)
        future.result(timeout=10)
        self.delivered += 1


@pytest.fixture
def webhooks() -> BankWebhooks:
    return BankWebhooks()


@pytest.fixture
def bank(webhooks: BankWebhooks) -> Iterator[SimulatedBank]:
    settings = RailSettings(
        settle_seconds=0.5, return_seconds=1.0, webhook_secret=SECRET, webhook_retry_seconds=0.2
    )
    with SimulatedBank(settings, webhook_transport=webhooks) as simulated:
        yield simulated


@asynccontextmanager
async def payout_worker(
    client: Client,
    engine: Engine,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    *,
    task_queue: str,
    poll_seconds: float = 60.0,
    return_window_seconds: float = 3.0,
) -> AsyncIterator[Worker]:
    """The platform's worker (the registries' workflows, every real activity) with this bank."""
    webhooks.client = client
    webhooks.loop = asyncio.get_running_loop()
    activities = build_activities(
        engine,
        rail=bank,
        client=client,
        poll_seconds=poll_seconds,
        return_window_seconds=return_window_seconds,
    )
    async with running_worker(client, engine, task_queue=task_queue, activities=activities) as w:
        yield w


def seller_with_available(
    engine: Engine,
    payouts: Payouts,
    seller_id: str,
    amount: int,
    *,
    account_number: str = ACCOUNT_PAID,
) -> None:
    """A seller with a payout account and ``amount`` available (a posted earning)."""
    m = payouts.marketplace
    with engine.begin() as conn:
        m.create_seller(conn, seller_id=seller_id, name=f"Shop {seller_id}", currency="USD")
        payouts.set_payout_account(conn, seller_id, account_number, TEST_ROUTING_NUMBER, "Jane")
        if amount:
            m.book_earning(conn, seller_id=seller_id, order_id=f"o-{seller_id}", amount=amount)
            m.post_earning(conn, seller_id, f"o-{seller_id}")


def views(engine: Engine, payouts: Payouts, seller_id: str) -> tuple[int, int, int]:
    """(pending, posted, available)"""
    with engine.begin() as conn:
        b: SellerBalances = payouts.marketplace.seller_balances(conn, seller_id)
    return (b.pending, b.posted, b.available)


def payout_status(engine: Engine, payouts: Payouts, payout_id: str) -> str:
    with engine.begin() as conn:
        return str(payouts.get_payout(conn, payout_id).status)


def assert_status(engine: Engine, payouts: Payouts, payout_id: str, status: str) -> None:
    assert payout_status(engine, payouts, payout_id) == status


def ledger_count(engine: Engine, external_id: str) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(ledger_transactions)
                .where(ledger_transactions.c.external_id == external_id)
            ).scalar_one()
        )


def exactly_once(engine: Engine, bank: SimulatedBank, payout_id: str) -> None:
    """Paid once by the bank, one payout transaction in the ledger."""
    assert bank.paid_count(payout_id) == 1
    assert ledger_count(engine, f"payout:{payout_id}") == 1
