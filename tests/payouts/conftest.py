"""Helpers of the payout tests: a worker whose payout activities use a simulated bank of the
test's own (the only stand-in: it is the outside world), whose webhooks reach the payout
workflows as the API would hand them over (signature verified, then signalled). ``payout_env``
bundles what a payout test works with: that worker, the bank, and the balance and status checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import build_activities
from marketplace import Marketplace, Payouts, SellerBalances
from payment_rail import (
    ACCOUNT_PAID,
    SIGNATURE_HEADER,
    TEST_ROUTING_NUMBER,
    RailSettings,
    SimulatedBank,
    construct_event,
)
from temporal_calls.payouts import signal_rail_event
from tests.helpers import ledger_transaction_count
from tests.temporal_env import running_worker

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


@dataclass
class PayoutEnv:
    """What a payout test works with: a Temporal client, the database, the domain, the test's
    own bank and its webhooks, and a task queue of the test's own."""

    client: Client
    engine: Engine
    payouts: Payouts
    bank: SimulatedBank
    webhooks: BankWebhooks
    task_queue: str

    @asynccontextmanager
    async def worker(
        self, *, poll_seconds: float = 60.0, return_window_seconds: float = 3.0
    ) -> AsyncIterator[Worker]:
        """The platform's worker (the registries' workflows, every real activity) with this
        bank."""
        self.webhooks.client = self.client
        self.webhooks.loop = asyncio.get_running_loop()
        activities = build_activities(
            self.engine,
            rail=self.bank,
            client=self.client,
            poll_seconds=poll_seconds,
            return_window_seconds=return_window_seconds,
        )
        async with running_worker(
            self.client, self.engine, task_queue=self.task_queue, activities=activities
        ) as w:
            yield w

    def seller_with_available(
        self, seller_id: str, amount: int, *, account_number: str = ACCOUNT_PAID
    ) -> None:
        seller_with_available(
            self.engine, self.payouts, seller_id, amount, account_number=account_number
        )

    def views(self, seller_id: str) -> tuple[int, int, int]:
        """(pending, posted, available)"""
        with self.engine.begin() as conn:
            b: SellerBalances = self.payouts.marketplace.seller_balances(conn, seller_id)
        return (b.pending, b.posted, b.available)

    def payout_status(self, payout_id: str) -> str:
        with self.engine.begin() as conn:
            return str(self.payouts.get_payout(conn, payout_id).status)

    def assert_status(self, payout_id: str, status: str) -> None:
        assert self.payout_status(payout_id) == status

    def exactly_once(self, payout_id: str) -> None:
        """Paid once by the bank, one payout transaction in the ledger."""
        assert self.bank.paid_count(payout_id) == 1
        assert ledger_transaction_count(self.engine, f"payout:{payout_id}") == 1


@pytest.fixture
def payout_env(
    temporal_client: Client,
    engine: Engine,
    payouts: Payouts,
    bank: SimulatedBank,
    webhooks: BankWebhooks,
    task_queue: str,
) -> PayoutEnv:
    return PayoutEnv(temporal_client, engine, payouts, bank, webhooks, task_queue)
