"""The simulated bank's real-time rail: instant payouts settle within 2 s whatever the standard
rail's delay, the method is part of the idempotency check, and the instant test accounts (one
that takes no instant payments, one that fails them after submission) behave as documented, in
process and over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payment_rail import (
    ACCOUNT_INSTANT_FAILS,
    ACCOUNT_NO_INSTANT,
    ACCOUNT_PAID,
    INSTANT_NOT_SUPPORTED,
    TEST_ROUTING_NUMBER,
    BankAccount,
    HttpPaymentRail,
    RailEventType,
    RailIdempotencyConflict,
    RailMethod,
    RailPayoutNotFound,
    RailPayoutState,
    RailRejected,
    SimulatedBank,
)
from payment_rail.service import create_app, serve_in_thread
from payment_rail.simulated import wait_for_status
from tests.payment_rail.conftest import WebhookReceiver, eventually, fast_settings, payout

Receiver = tuple[WebhookReceiver, str]

SLOW = 3_600.0  # the standard rail settles in an hour here


@pytest.fixture
def slow_bank(receiver: Receiver) -> Iterator[SimulatedBank]:
    with SimulatedBank(fast_settings(settle_seconds=SLOW), webhook_url=receiver[1]) as bank:
        yield bank


def account(number: str) -> BankAccount:
    return BankAccount(number, TEST_ROUTING_NUMBER, "Ada Seller")


def test_an_instant_payout_settles_in_seconds_while_standard_ones_wait(
    slow_bank: SimulatedBank, receiver: Receiver
) -> None:
    slow_bank.submit_payout(payout("po_std"))
    instant = slow_bank.submit_payout(payout("po_rtp", method=RailMethod.INSTANT))
    assert instant.status is RailPayoutState.PROCESSING
    paid = wait_for_status(slow_bank, "po_rtp", RailPayoutState.PAID, timeout=5)
    assert paid.paid_at is not None and (paid.paid_at - paid.created_at).total_seconds() <= 2
    eventually(lambda: len(receiver[0].for_payout("po_rtp")) == 1)
    assert receiver[0].for_payout("po_rtp")[0].type is RailEventType.PAYOUT_PAID
    assert slow_bank.get_payout("po_std").status is RailPayoutState.PROCESSING
    assert slow_bank.inspect("po_rtp").request.method is RailMethod.INSTANT


def test_the_method_is_part_of_the_idempotency_check(slow_bank: SimulatedBank) -> None:
    first = slow_bank.submit_payout(payout("po_m", method=RailMethod.INSTANT))
    assert slow_bank.submit_payout(payout("po_m", method=RailMethod.INSTANT)) == first
    with pytest.raises(RailIdempotencyConflict):
        slow_bank.submit_payout(payout("po_m"))
    slow_bank.submit_payout(payout("po_s"))
    with pytest.raises(RailIdempotencyConflict):
        slow_bank.submit_payout(payout("po_s", method=RailMethod.INSTANT))
    wait_for_status(slow_bank, "po_m", RailPayoutState.PAID, timeout=5)
    assert slow_bank.paid_count("po_m") == 1


def test_an_account_without_instant_payments(slow_bank: SimulatedBank) -> None:
    assert slow_bank.supports_instant(account(ACCOUNT_PAID))
    assert not slow_bank.supports_instant(account(ACCOUNT_NO_INSTANT))
    with pytest.raises(RailRejected) as refused:
        slow_bank.submit_payout(payout("po_no", ACCOUNT_NO_INSTANT, method=RailMethod.INSTANT))
    assert refused.value.code == INSTANT_NOT_SUPPORTED
    with pytest.raises(RailPayoutNotFound):  # nothing stored
        slow_bank.get_payout("po_no")
    # A standard payout to it is accepted (and paid when the batch rail settles).
    slow_bank.submit_payout(payout("po_no_std", ACCOUNT_NO_INSTANT))
    slow_bank.advance_clock(SLOW)
    assert slow_bank.get_payout("po_no_std").status is RailPayoutState.PAID
    with pytest.raises(RailRejected) as malformed:
        slow_bank.supports_instant(account("12"))
    assert malformed.value.code == "invalid_destination"


def test_an_account_that_fails_instant_payouts_after_submission(
    slow_bank: SimulatedBank, receiver: Receiver
) -> None:
    assert slow_bank.supports_instant(account(ACCOUNT_INSTANT_FAILS))
    accepted = slow_bank.submit_payout(
        payout("po_fail", ACCOUNT_INSTANT_FAILS, method=RailMethod.INSTANT)
    )
    assert accepted.status is RailPayoutState.PROCESSING
    failed = wait_for_status(slow_bank, "po_fail", RailPayoutState.FAILED, timeout=5)
    assert failed.code == "instant_declined"
    eventually(lambda: len(receiver[0].for_payout("po_fail")) == 1)
    assert receiver[0].for_payout("po_fail")[0].type is RailEventType.PAYOUT_FAILED
    assert slow_bank.paid_count("po_fail") == 0


def test_instant_over_http(slow_bank: SimulatedBank) -> None:
    with serve_in_thread(create_app(slow_bank)) as url, HttpPaymentRail(url) as rail:
        assert rail.supports_instant(account(ACCOUNT_PAID)) is True
        assert rail.supports_instant(account(ACCOUNT_NO_INSTANT)) is False
        with pytest.raises(RailRejected) as refused:
            rail.submit_payout(payout("po_h", ACCOUNT_NO_INSTANT, method=RailMethod.INSTANT))
        assert refused.value.code == INSTANT_NOT_SUPPORTED
        rail.submit_payout(payout("po_hi", method=RailMethod.INSTANT))
        wait_for_status(rail, "po_hi", RailPayoutState.PAID, timeout=5)
        assert slow_bank.inspect("po_hi").request.method is RailMethod.INSTANT
