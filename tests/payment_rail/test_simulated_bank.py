"""The simulated bank in-process: idempotency, the test accounts' outcomes and timing, webhooks
(signed, retried, dropped, duplicated), forced outcomes, unavailability and persistence.

Settle 0.2 s and return 0.4 s (``fast_settings``); webhooks go over real HTTP to a receiver that
checks every signature."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from payment_rail import (
    ACCOUNT_CLOSED,
    ACCOUNT_NO_WEBHOOK,
    ACCOUNT_PAID,
    ACCOUNT_RETURNED,
    TEST_ACCOUNTS,
    BankAccount,
    PaymentRail,
    RailEventType,
    RailIdempotencyConflict,
    RailOutcome,
    RailPayoutNotFound,
    RailPayoutState,
    RailRejected,
    RailUnavailable,
    SimulatedBank,
)
from payment_rail.service import serve_in_thread
from payment_rail.simulated import AccountScenario, WebhookState, wait_for_status
from tests.payment_rail.conftest import (
    WebhookReceiver,
    eventually,
    fast_settings,
    free_port,
    payout,
)

Receiver = tuple[WebhookReceiver, str]


def after(start: datetime | None, seconds: float, actual: datetime | None) -> bool:
    """``actual`` is ``seconds`` after ``start``, to the ms (times are stored as floats)."""
    assert start is not None and actual is not None
    return abs((actual - start).total_seconds() - seconds) < 0.001


def test_the_simulated_bank_is_a_payment_rail(bank: SimulatedBank) -> None:
    assert isinstance(bank, PaymentRail)


# --- Idempotency ----------------------------------------------------------------------------------


def test_the_same_payout_id_twice_pays_once(bank: SimulatedBank, receiver: Receiver) -> None:
    first = bank.submit_payout(payout("po_idem"))
    again = bank.submit_payout(payout("po_idem"))
    assert again == first
    assert first.status is RailPayoutState.PROCESSING
    assert first.rail_reference.startswith("simpo_")

    wait_for_status(bank, "po_idem", RailPayoutState.PAID)
    assert bank.submit_payout(payout("po_idem")) == first  # a replay after settlement too
    eventually(lambda: len(receiver[0].for_payout("po_idem")) == 1)
    time.sleep(0.3)  # nothing more comes
    assert bank.paid_count("po_idem") == 1
    record = bank.inspect("po_idem")
    assert (record.submissions, record.times_paid) == (3, 1)
    assert [e.type for e in receiver[0].for_payout("po_idem")] == [RailEventType.PAYOUT_PAID]


def test_concurrent_submissions_of_one_payout_pay_once(bank: SimulatedBank) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: bank.submit_payout(payout("po_race")), range(16)))
    assert len({r.rail_reference for r in results}) == 1
    wait_for_status(bank, "po_race", RailPayoutState.PAID)
    assert bank.paid_count("po_race") == 1
    assert bank.inspect("po_race").submissions == 16


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": 1_501},
        {"account_number": "000999999999"},
    ],
)
def test_the_same_id_for_another_payout_is_a_conflict(
    bank: SimulatedBank, changed: dict[str, int | str]
) -> None:
    bank.submit_payout(payout("po_conflict"))
    with pytest.raises(RailIdempotencyConflict) as info:
        bank.submit_payout(payout("po_conflict", **changed))  # type: ignore[arg-type]
    assert info.value.code == "rail_idempotency_conflict"
    assert not info.value.retryable
    assert bank.inspect("po_conflict").request.amount == 1_500


def test_currency_or_holder_changes_conflict_but_description_does_not(bank: SimulatedBank) -> None:
    original = payout("po_fields")
    bank.submit_payout(original)
    with pytest.raises(RailIdempotencyConflict):
        bank.submit_payout(type(original)(original.payout_id, 1_500, "EUR", original.destination))
    other_holder = BankAccount(ACCOUNT_PAID, original.destination.routing_number, "Someone Else")
    with pytest.raises(RailIdempotencyConflict):
        bank.submit_payout(type(original)(original.payout_id, 1_500, "USD", other_holder))
    relabelled = type(original)(
        original.payout_id, 1_500, "USD", original.destination, description="renamed"
    )
    assert bank.submit_payout(relabelled).payout_id == "po_fields"


@pytest.mark.parametrize(
    ("amount", "currency", "account", "routing", "holder", "code"),
    [
        (0, "USD", ACCOUNT_PAID, "110000000", "Ada", "invalid_amount"),
        (-5, "USD", ACCOUNT_PAID, "110000000", "Ada", "invalid_amount"),
        (10**14, "USD", ACCOUNT_PAID, "110000000", "Ada", "invalid_amount"),
        (100, "usd", ACCOUNT_PAID, "110000000", "Ada", "invalid_currency"),
        (100, "USD", "12ab", "110000000", "Ada", "invalid_destination"),
        (100, "USD", ACCOUNT_PAID, "1100", "Ada", "invalid_destination"),
        (100, "USD", ACCOUNT_PAID, "110000000", "  ", "invalid_destination"),
    ],
)
def test_invalid_requests_are_rejected_and_not_stored(
    bank: SimulatedBank,
    amount: int,
    currency: str,
    account: str,
    routing: str,
    holder: str,
    code: str,
) -> None:
    bad = type(payout("x"))("po_bad", amount, currency, BankAccount(account, routing, holder))
    with pytest.raises(RailRejected) as info:
        bank.submit_payout(bad)
    assert info.value.code == code
    with pytest.raises(RailPayoutNotFound):
        bank.get_payout("po_bad")
    # Corrected, the same id goes through.
    assert bank.submit_payout(payout("po_bad")).payout_id == "po_bad"


def test_an_unknown_payout_is_not_found(bank: SimulatedBank) -> None:
    with pytest.raises(RailPayoutNotFound) as info:
        bank.get_payout("po_never")
    assert info.value.code == "rail_payout_not_found"
    assert bank.paid_count("po_never") == 0


# --- The test accounts ----------------------------------------------------------------------------


def test_the_test_account_table() -> None:
    assert {n: s.outcome for n, s in TEST_ACCOUNTS.items()} == {
        "000123456789": RailOutcome.PAID,
        "000111111113": RailOutcome.FAILED,
        "000111111116": RailOutcome.RETURNED,
        "000222222227": RailOutcome.PAID_WITHOUT_WEBHOOK,
        "000333333335": RailOutcome.PAID,  # standard only: takes no instant payments
        "000333333338": RailOutcome.PAID,  # standard; instant payouts fail after submission
    }
    instant = {n for n, s in TEST_ACCOUNTS.items() if not s.supports_instant}
    assert instant == {"000333333335"}
    assert TEST_ACCOUNTS["000333333338"].instant == AccountScenario(
        RailOutcome.FAILED,
        "instant_declined",
        "The receiving bank declined the real-time payment.",
    )


@pytest.mark.parametrize("account", [ACCOUNT_PAID, "000555555555"])
def test_a_paid_account_settles_after_the_delay(
    bank: SimulatedBank, receiver: Receiver, account: str
) -> None:
    submitted = bank.submit_payout(payout("po_paid", account))
    time.sleep(0.1)
    assert bank.get_payout("po_paid").status is RailPayoutState.PROCESSING
    status = wait_for_status(bank, "po_paid", RailPayoutState.PAID, timeout=2)
    assert after(submitted.created_at, 0.2, status.paid_at)
    assert (status.code, status.reason, status.failed_at, status.returned_at) == (None,) * 4
    eventually(lambda: len(receiver[0].for_payout("po_paid")) == 1)
    (event,) = receiver[0].for_payout("po_paid")
    assert event.type is RailEventType.PAYOUT_PAID
    assert event.occurred_at == status.paid_at
    assert bank.paid_count("po_paid") == 1


def test_the_closed_account_fails_with_account_closed(
    bank: SimulatedBank, receiver: Receiver
) -> None:
    submitted = bank.submit_payout(payout("po_closed", ACCOUNT_CLOSED))
    status = wait_for_status(bank, "po_closed", RailPayoutState.FAILED, timeout=2)
    assert status.code == "account_closed"
    assert status.reason == "The destination account is closed."
    assert after(submitted.created_at, 0.2, status.failed_at)
    assert status.paid_at is None
    assert bank.paid_count("po_closed") == 0
    eventually(lambda: len(receiver[0].for_payout("po_closed")) == 1)
    (event,) = receiver[0].for_payout("po_closed")
    assert (event.type, event.code) == (RailEventType.PAYOUT_FAILED, "account_closed")


def test_the_return_account_is_paid_then_returned(bank: SimulatedBank, receiver: Receiver) -> None:
    submitted = bank.submit_payout(payout("po_ret", ACCOUNT_RETURNED))
    paid = wait_for_status(bank, "po_ret", RailPayoutState.PAID, timeout=2)
    assert paid.code is None
    eventually(lambda: len(receiver[0].for_payout("po_ret")) == 1)

    returned = wait_for_status(bank, "po_ret", RailPayoutState.RETURNED, timeout=2)
    assert returned.paid_at == paid.paid_at
    assert after(submitted.created_at, 0.2, returned.paid_at)
    assert after(paid.paid_at, 0.4, returned.returned_at)
    assert returned.code == "no_account"
    eventually(lambda: len(receiver[0].for_payout("po_ret")) == 2)
    assert [(e.type, e.code) for e in receiver[0].for_payout("po_ret")] == [
        (RailEventType.PAYOUT_PAID, None),
        (RailEventType.PAYOUT_RETURNED, "no_account"),
    ]
    assert bank.paid_count("po_ret") == 1


def test_the_silent_account_is_paid_without_a_webhook(
    bank: SimulatedBank, receiver: Receiver
) -> None:
    bank.submit_payout(payout("po_silent", ACCOUNT_NO_WEBHOOK))
    bank.submit_payout(payout("po_loud", ACCOUNT_PAID))  # settles at the same time
    status = wait_for_status(bank, "po_silent", RailPayoutState.PAID, timeout=2)
    assert status.paid_at is not None
    eventually(lambda: len(receiver[0].for_payout("po_loud")) == 1)
    time.sleep(0.3)
    assert receiver[0].for_payout("po_silent") == []
    (record,) = bank.inspect("po_silent").webhooks
    assert record.state is WebhookState.SUPPRESSED
    # Only polling tells, until a test chooses to deliver it late.
    assert bank.redeliver_webhooks("po_silent") == 1
    eventually(lambda: len(receiver[0].for_payout("po_silent")) == 1)


def test_every_webhook_is_signed_with_the_shared_secret(receiver: Receiver) -> None:
    rec, url = receiver
    # A bank with another secret: the receiver refuses each delivery, and the bank retries.
    with SimulatedBank(
        fast_settings(webhook_secret="whsec_wrong", webhook_max_attempts=2), webhook_url=url
    ) as wrong:
        wrong.submit_payout(payout("po_wrong_secret"))
        wait_for_status(wrong, "po_wrong_secret", RailPayoutState.PAID)
        eventually(
            lambda: wrong.inspect("po_wrong_secret").webhooks[0].state is WebhookState.GAVE_UP
        )
    assert rec.for_payout("po_wrong_secret") == []
    assert rec.rejected == ["signature does not match the body and secret"] * 2


# --- Webhook delivery -----------------------------------------------------------------------------


def test_webhooks_are_retried_until_the_receiver_comes_up() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/rail/webhooks"
    with SimulatedBank(fast_settings(), webhook_url=url) as bank:
        bank.submit_payout(payout("po_down"))
        wait_for_status(bank, "po_down", RailPayoutState.PAID)
        eventually(lambda: bank.inspect("po_down").webhooks[0].failed_attempts >= 3)
        record = bank.inspect("po_down").webhooks[0]
        assert record.state in (WebhookState.PENDING, WebhookState.IN_FLIGHT)
        assert record.last_error is not None and "Connect" in record.last_error

        rec = WebhookReceiver()
        with serve_in_thread(rec.app(), port=port):
            eventually(lambda: len(rec.for_payout("po_down")) == 1, timeout=10)
            eventually(lambda: bank.inspect("po_down").webhooks[0].state is WebhookState.DELIVERED)
        record = bank.inspect("po_down").webhooks[0]
        assert (record.deliveries, record.failed_attempts) == (1, 0)


def test_webhooks_are_retried_with_back_off_after_errors(
    bank: SimulatedBank, receiver: Receiver
) -> None:
    rec = receiver[0]
    rec.fail_next = 3
    started = time.monotonic()
    bank.submit_payout(payout("po_503"))
    eventually(lambda: len(rec.for_payout("po_503")) == 1)
    # 0.2 s settle, then back-off 0.05 + 0.1 + 0.2 s between the four attempts.
    assert time.monotonic() - started >= 0.2 + 0.35
    assert rec.failures_served == 3
    # The bank records the delivery once the receiver's answer is back, a moment after the
    # receiver has the event.
    eventually(lambda: bank.inspect("po_503").webhooks[0].state is WebhookState.DELIVERED)
    assert bank.inspect("po_503").webhooks[0].deliveries == 1


def test_the_bank_gives_up_after_the_last_attempt(receiver: Receiver) -> None:
    rec, url = receiver
    rec.fail_next = 100
    with SimulatedBank(fast_settings(webhook_max_attempts=3), webhook_url=url) as bank:
        bank.submit_payout(payout("po_give_up"))
        wait_for_status(bank, "po_give_up", RailPayoutState.PAID)
        eventually(lambda: bank.inspect("po_give_up").webhooks[0].state is WebhookState.GAVE_UP)
        record = bank.inspect("po_give_up").webhooks[0]
        assert (record.failed_attempts, record.last_error) == (3, "RuntimeError: HTTP 503")
        assert rec.failures_served == 3
        # The payout is paid all the same: polling tells.
        assert bank.get_payout("po_give_up").status is RailPayoutState.PAID


def test_webhooks_can_be_dropped(bank: SimulatedBank, receiver: Receiver) -> None:
    bank.drop_webhooks(1, payout_id="po_drop")
    bank.submit_payout(payout("po_drop"))
    bank.submit_payout(payout("po_keep"))
    wait_for_status(bank, "po_drop", RailPayoutState.PAID)
    eventually(lambda: len(receiver[0].for_payout("po_keep")) == 1)
    time.sleep(0.2)
    assert receiver[0].for_payout("po_drop") == []
    assert bank.inspect("po_drop").webhooks[0].state is WebhookState.DROPPED


def test_webhooks_can_be_duplicated_with_the_same_event_id(
    bank: SimulatedBank, receiver: Receiver
) -> None:
    bank.duplicate_webhooks(1, copies=3)
    bank.submit_payout(payout("po_dup"))
    eventually(lambda: len(receiver[0].for_payout("po_dup")) == 3)
    events = receiver[0].for_payout("po_dup")
    assert len({e.id for e in events}) == 1
    eventually(lambda: bank.inspect("po_dup").webhooks[0].state is WebhookState.DELIVERED)
    assert bank.inspect("po_dup").webhooks[0].deliveries == 3
    assert bank.paid_count("po_dup") == 1
    # Redelivery later (as a PSP does when it is unsure) sends the same event once more.
    assert bank.redeliver_webhooks("po_dup") == 1
    eventually(lambda: len(receiver[0].for_payout("po_dup")) == 4)
    assert {e.id for e in receiver[0].for_payout("po_dup")} == {events[0].id}


def test_without_a_webhook_url_events_wait_until_one_is_set(receiver: Receiver) -> None:
    with SimulatedBank(fast_settings()) as bank:
        bank.submit_payout(payout("po_later"))
        wait_for_status(bank, "po_later", RailPayoutState.PAID)
        assert bank.inspect("po_later").webhooks[0].state is WebhookState.PENDING
        bank.set_webhook_url(receiver[1])
        eventually(lambda: len(receiver[0].for_payout("po_later")) == 1)


def test_a_webhook_transport_receives_signed_events() -> None:
    from payment_rail import SIGNATURE_HEADER, construct_event
    from tests.payment_rail.conftest import SECRET

    got: list[tuple[bytes, str]] = []
    with SimulatedBank(
        fast_settings(), webhook_transport=lambda body, h: got.append((body, h[SIGNATURE_HEADER]))
    ) as bank:
        bank.submit_payout(payout("po_transport", ACCOUNT_CLOSED))
        eventually(lambda: len(got) == 1)
    event = construct_event(SECRET, got[0][1], got[0][0])
    assert (event.payout_id, event.type) == ("po_transport", RailEventType.PAYOUT_FAILED)


# --- Test controls --------------------------------------------------------------------------------


def test_forcing_a_failure_before_submission(bank: SimulatedBank, receiver: Receiver) -> None:
    bank.force_outcome("po_forced", RailOutcome.FAILED, code="insufficient_funds")
    bank.submit_payout(payout("po_forced", ACCOUNT_PAID))
    status = wait_for_status(bank, "po_forced", RailPayoutState.FAILED)
    assert (status.code, status.reason) == (
        "insufficient_funds",
        "The bank could not process the payout.",
    )
    eventually(lambda: len(receiver[0].for_payout("po_forced")) == 1)
    assert receiver[0].for_payout("po_forced")[0].code == "insufficient_funds"


def test_forcing_an_outcome_while_processing(bank: SimulatedBank) -> None:
    bank.submit_payout(payout("po_switch", ACCOUNT_CLOSED))
    bank.force_outcome("po_switch", RailOutcome.RETURNED)
    assert bank.settle_now("po_switch") == 1
    assert bank.get_payout("po_switch").status is RailPayoutState.PAID
    bank.advance_clock(0.5)
    status = bank.get_payout("po_switch")
    assert (status.status, status.code) == (RailPayoutState.RETURNED, "no_account")
    with pytest.raises(ValueError, match="already returned"):
        bank.force_outcome("po_switch", RailOutcome.PAID)


def test_a_payout_can_be_held_then_released(bank: SimulatedBank) -> None:
    bank.force_outcome("po_stuck", RailOutcome.NEVER_SETTLES)
    bank.submit_payout(payout("po_stuck"))
    bank.advance_clock(3_600)
    assert bank.get_payout("po_stuck").status is RailPayoutState.PROCESSING
    assert bank.settle_now() == 0  # a held payout does not settle
    bank.force_outcome("po_stuck", RailOutcome.PAID)  # its settle time is long past
    assert bank.get_payout("po_stuck").status is RailPayoutState.PAID


def test_a_forced_rejection_refuses_every_submission(bank: SimulatedBank) -> None:
    bank.force_outcome("po_reject", RailOutcome.REJECTED, code="account_frozen")
    for _ in range(2):
        with pytest.raises(RailRejected) as info:
            bank.submit_payout(payout("po_reject"))
        assert info.value.code == "account_frozen"
    with pytest.raises(RailPayoutNotFound):
        bank.get_payout("po_reject")
    bank.submit_payout(payout("po_accepted"))
    with pytest.raises(ValueError, match="accepted"):
        bank.force_outcome("po_accepted", RailOutcome.REJECTED)


def test_returning_a_paid_payout_on_demand(bank: SimulatedBank, receiver: Receiver) -> None:
    bank.submit_payout(payout("po_ondemand"))
    with pytest.raises(ValueError, match="not paid"):
        bank.return_payout("po_ondemand")
    bank.settle_now("po_ondemand")
    status = bank.return_payout("po_ondemand", code="account_frozen", reason="Frozen.")
    assert (status.status, status.code, status.reason) == (
        RailPayoutState.RETURNED,
        "account_frozen",
        "Frozen.",
    )
    eventually(lambda: len(receiver[0].for_payout("po_ondemand")) == 2)
    assert receiver[0].for_payout("po_ondemand")[1].type is RailEventType.PAYOUT_RETURNED


def test_settle_now_and_advance_clock_without_the_background_thread() -> None:
    bank = SimulatedBank(fast_settings(settle_seconds=60, return_seconds=86_400))
    try:
        bank.submit_payout(payout("po_a", ACCOUNT_RETURNED))
        bank.submit_payout(payout("po_b"))
        assert bank.settle_now("po_a") == 1
        assert bank.get_payout("po_a").status is RailPayoutState.PAID
        assert bank.get_payout("po_b").status is RailPayoutState.PROCESSING
        bank.advance_clock(60)
        assert bank.get_payout("po_b").status is RailPayoutState.PAID
        bank.advance_clock(86_400)
        returned = bank.get_payout("po_a")
        assert returned.status is RailPayoutState.RETURNED
        assert after(returned.paid_at, 86_400, returned.returned_at)
        assert after(returned.returned_at, 60, bank.now()) or (
            60 < (bank.now() - returned.returned_at).total_seconds() < 65  # type: ignore[operator]
        )
        with pytest.raises(ValueError):
            bank.advance_clock(-1)
    finally:
        bank.close()


def test_the_rail_can_be_unavailable_for_the_next_calls(bank: SimulatedBank) -> None:
    bank.make_unavailable(2)
    for _ in range(2):
        with pytest.raises(RailUnavailable) as info:
            bank.submit_payout(payout("po_flaky"))
        assert info.value.retryable
    with pytest.raises(RailPayoutNotFound):
        bank.get_payout("po_flaky")  # the failed calls stored nothing
    bank.submit_payout(payout("po_flaky"))
    assert bank.inspect("po_flaky").submissions == 1


def test_a_lost_response_leaves_the_payout_submitted_and_a_retry_pays_once(
    bank: SimulatedBank,
) -> None:
    bank.make_unavailable(1, after_processing=True)
    with pytest.raises(RailUnavailable):
        bank.submit_payout(payout("po_lost"))
    assert bank.get_payout("po_lost").status is RailPayoutState.PROCESSING
    retried = bank.submit_payout(payout("po_lost"))
    assert retried.payout_id == "po_lost"
    wait_for_status(bank, "po_lost", RailPayoutState.PAID)
    assert bank.paid_count("po_lost") == 1
    assert bank.inspect("po_lost").submissions == 2


def test_list_payouts_shows_everything_paid(bank: SimulatedBank) -> None:
    for i in range(3):
        bank.submit_payout(payout(f"po_list_{i}", amount=100 * (i + 1)))
    bank.settle_now()
    records = bank.list_payouts()
    assert [r.request.payout_id for r in records] == ["po_list_0", "po_list_1", "po_list_2"]
    assert sum(r.request.amount for r in records if r.times_paid) == 600


# --- Persistence ----------------------------------------------------------------------------------


def test_state_survives_a_restart_and_nothing_is_paid_twice(
    tmp_path: Path, receiver: Receiver
) -> None:
    rec, url = receiver
    settings = fast_settings(settle_seconds=0.5)
    with SimulatedBank(settings, data_dir=tmp_path, webhook_url=url) as bank:
        first = bank.submit_payout(payout("po_persist_paid"))
        bank.settle_now("po_persist_paid")
        bank.submit_payout(payout("po_persist_open", ACCOUNT_CLOSED))  # unsettled at close
        bank.force_outcome("po_persist_forced", RailOutcome.FAILED, code="forced")
        eventually(lambda: len(rec.for_payout("po_persist_paid")) == 1)

    with SimulatedBank(settings, data_dir=tmp_path, webhook_url=url) as bank:
        assert bank.submit_payout(payout("po_persist_paid")) == first
        with pytest.raises(RailIdempotencyConflict):
            bank.submit_payout(payout("po_persist_paid", amount=1))
        failed = wait_for_status(bank, "po_persist_open", RailPayoutState.FAILED)
        assert failed.code == "account_closed"
        eventually(lambda: len(rec.for_payout("po_persist_open")) == 1)
        bank.submit_payout(payout("po_persist_forced"))
        assert wait_for_status(bank, "po_persist_forced", RailPayoutState.FAILED).code == "forced"
        assert bank.paid_count("po_persist_paid") == 1
        assert bank.inspect("po_persist_paid").submissions == 2
    assert len(rec.for_payout("po_persist_paid")) == 1
