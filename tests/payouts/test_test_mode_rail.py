"""Test-mode payouts go to the test rail (always a simulated bank), whatever rail live payouts use:
the payout activities pick the rail by the payout's mode (its seller's). Here the live rail is a
stand-in for a real bank that records what it is sent; a test-mode payout must never reach it,
neither activity by activity nor through the payout workflow end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from activities.payouts import PayoutActivities
from activities.registry import build_activities
from contracts.payouts import PayoutIdInput, ReservePayoutInput
from marketplace import Marketplace, Payouts
from payment_rail import (
    BankAccount,
    PayoutRequest,
    PayoutSubmission,
    RailPayoutState,
    RailPayoutStatus,
    RailSettings,
    SimulatedBank,
    open_test_payment_rail,
)
from payment_rail.client import HttpPaymentRail
from temporal_calls.payouts import start_payout
from tests.helpers import eventually
from tests.payouts.conftest import PayoutEnv
from tests.temporal_env import running_worker

ACCOUNT = "000123456789"
ROUTING = "110000000"


class RealBankStandIn:
    """The live rail: records every call (a real bank would move real money)."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.asked: list[str] = []

    def submit_payout(self, request: PayoutRequest) -> PayoutSubmission:
        self.submitted.append(request.payout_id)
        return PayoutSubmission(
            payout_id=request.payout_id,
            rail_reference=f"real-{request.payout_id}",
            status=RailPayoutState.PROCESSING,
            amount=request.amount,
            currency=request.currency,
            created_at=datetime.now(UTC),
        )

    def get_payout(self, payout_id: str) -> RailPayoutStatus:
        self.asked.append(payout_id)
        raise AssertionError("not asked in these tests")

    def supports_instant(self, destination: BankAccount) -> bool:
        return True

    def close(self) -> None:
        pass


@pytest.fixture
def simulated_bank() -> Iterator[SimulatedBank]:
    bank = SimulatedBank(RailSettings(settle_seconds=3600)).start()
    yield bank
    bank.close()


def _seller_with_money(engine: Engine, payouts: Payouts, seller_id: str, livemode: bool) -> None:
    m = payouts.marketplace
    with engine.begin() as conn:
        m.create_seller(conn, seller_id=seller_id, name="Shop", currency="USD", livemode=livemode)
        payouts.set_payout_account(conn, seller_id, ACCOUNT, ROUTING, "Jane Doe")
        m.book_earning(conn, seller_id=seller_id, order_id="o-1", amount=5_000)
        m.post_earning(conn, seller_id, "o-1")


@pytest.mark.parametrize("livemode", [False, True], ids=["test", "live"])
def test_a_payout_goes_to_the_rail_of_its_mode(
    engine: Engine, uid: str, simulated_bank: SimulatedBank, livemode: bool
) -> None:
    real_bank = RealBankStandIn()
    activities = PayoutActivities(
        engine, real_bank, test_rail=simulated_bank, marketplace=Marketplace()
    )
    seller, payout_id = f"rail-{uid}", f"po-rail-{uid}"
    _seller_with_money(engine, activities.payouts, seller, livemode)

    activities.reserve_payout(
        ReservePayoutInput(payout_id=payout_id, seller_id=seller, amount=1_000)
    )
    result = activities.submit_to_rail(PayoutIdInput(payout_id))

    assert result.status == "processing"
    if livemode:
        assert real_bank.submitted == [payout_id]
    else:
        assert real_bank.submitted == []  # test money never reaches the live rail
        assert activities.get_rail_status(PayoutIdInput(payout_id)).status == "processing"
        assert simulated_bank.get_payout(payout_id).payout_id == payout_id
    assert real_bank.asked == []


def test_the_test_rail_is_a_simulated_bank_whatever_the_live_rail_is() -> None:
    live_elsewhere = RailSettings(url="https://bank.example/api", api_key="live-secret")
    rail = open_test_payment_rail(live_elsewhere)
    try:
        assert isinstance(rail, SimulatedBank)  # in-process, never the live URL
    finally:
        rail.close()
    separate = RailSettings(url="https://bank.example/api", test_url="http://127.0.0.1:9")
    rail = open_test_payment_rail(separate)
    try:
        assert isinstance(rail, HttpPaymentRail) and rail.base_url == "http://127.0.0.1:9"
    finally:
        rail.close()


async def test_a_test_mode_payout_is_paid_by_the_simulated_bank_end_to_end(
    payout_env: PayoutEnv, uid: str
) -> None:
    """The platform's worker with a real bank stand-in as its live rail and the simulated bank
    as its test rail: a test seller's payout runs through the payout workflow and is paid."""
    real_bank = RealBankStandIn()
    seller, payout_id = f"test-shop-{uid}", f"po-test-{uid}"
    _seller_with_money(payout_env.engine, payout_env.payouts, seller, livemode=False)
    payout_env.webhooks.client = payout_env.client
    payout_env.webhooks.loop = asyncio.get_running_loop()
    activities = build_activities(
        payout_env.engine, rail=real_bank, test_rail=payout_env.bank, client=payout_env.client
    )
    async with running_worker(
        payout_env.client,
        payout_env.engine,
        task_queue=payout_env.task_queue,
        activities=activities,
    ):
        await start_payout(
            payout_env.client, payout_id, seller, 2_000, task_queue=payout_env.task_queue
        )

        async def paid() -> None:
            assert payout_env.payout_status(payout_id) == "paid"

        await eventually(paid)
    assert payout_env.bank.paid_count(payout_id) == 1
    assert real_bank.submitted == [] and real_bank.asked == []
