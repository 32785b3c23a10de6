"""The simulated bank as an HTTP service, reached with ``HttpPaymentRail`` and steered with
``SimulatedBankAdmin``, on free ports; and ``python -m payment_rail`` restarted from its data
dir."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from payment_rail import (
    ACCOUNT_CLOSED,
    ACCOUNT_NO_WEBHOOK,
    ACCOUNT_RETURNED,
    HttpPaymentRail,
    PaymentRail,
    RailEventType,
    RailIdempotencyConflict,
    RailOutcome,
    RailPayoutNotFound,
    RailPayoutState,
    RailRejected,
    RailUnavailable,
    SimulatedBank,
    SimulatedBankAdmin,
)
from payment_rail.service import create_app, serve_in_thread
from payment_rail.simulated import WebhookState, wait_for_status
from tests.payment_rail.conftest import (
    SECRET,
    WebhookReceiver,
    eventually,
    fast_settings,
    free_port,
    payout,
)

API_KEY = "sk_rail_test"
REPO = Path(__file__).resolve().parents[2]
Receiver = tuple[WebhookReceiver, str]


@pytest.fixture
def service(receiver: Receiver) -> Iterator[tuple[SimulatedBank, str]]:
    with (
        SimulatedBank(fast_settings(api_key=API_KEY), webhook_url=receiver[1]) as bank,
        serve_in_thread(create_app(bank, api_key=API_KEY)) as url,
    ):
        yield bank, url


@pytest.fixture
def rail(service: tuple[SimulatedBank, str]) -> Iterator[HttpPaymentRail]:
    with HttpPaymentRail(service[1], API_KEY) as client:
        yield client


@pytest.fixture
def admin(service: tuple[SimulatedBank, str]) -> Iterator[SimulatedBankAdmin]:
    with SimulatedBankAdmin(service[1], API_KEY) as client:
        yield client


def test_a_payout_over_http_end_to_end(
    rail: HttpPaymentRail, admin: SimulatedBankAdmin, receiver: Receiver
) -> None:
    assert isinstance(rail, PaymentRail)
    submitted = rail.submit_payout(payout("po_http", metadata={"seller": "s_1"}))
    assert (submitted.status, submitted.amount, submitted.currency) == (
        RailPayoutState.PROCESSING,
        1_500,
        "USD",
    )
    assert rail.submit_payout(payout("po_http")) == submitted
    assert rail.get_payout("po_http").status is RailPayoutState.PROCESSING

    paid = wait_for_status(rail, "po_http", RailPayoutState.PAID, timeout=3)
    assert paid.rail_reference == submitted.rail_reference
    eventually(lambda: len(receiver[0].for_payout("po_http")) == 1)
    assert receiver[0].for_payout("po_http")[0].type is RailEventType.PAYOUT_PAID
    assert admin.paid_count("po_http") == 1
    record = admin.inspect("po_http")
    assert (record.submissions, record.times_paid) == (2, 1)
    assert record.request.metadata == {"seller": "s_1"}
    assert record.request.destination.account_number == "000123456789"


def test_errors_over_http(rail: HttpPaymentRail) -> None:
    rail.submit_payout(payout("po_http_err"))
    with pytest.raises(RailIdempotencyConflict):
        rail.submit_payout(payout("po_http_err", amount=2))
    with pytest.raises(RailRejected) as rejected:
        rail.submit_payout(payout("po_http_bad", amount=0))
    assert rejected.value.code == "invalid_amount"
    with pytest.raises(RailPayoutNotFound) as missing:
        rail.get_payout("po_http_bad")
    assert missing.value.code == "rail_payout_not_found"


def test_payout_ids_are_escaped_in_urls(rail: HttpPaymentRail, admin: SimulatedBankAdmin) -> None:
    odd = "payout/2027-01?x=1 #a"
    rail.submit_payout(payout(odd))
    assert rail.get_payout(odd).payout_id == odd
    assert admin.inspect(odd).request.payout_id == odd


def test_the_test_accounts_over_http(
    rail: HttpPaymentRail, admin: SimulatedBankAdmin, receiver: Receiver
) -> None:
    for pid, account in [("po_h_closed", ACCOUNT_CLOSED), ("po_h_ret", ACCOUNT_RETURNED)]:
        rail.submit_payout(payout(pid, account))
    rail.submit_payout(payout("po_h_silent", ACCOUNT_NO_WEBHOOK))
    assert wait_for_status(rail, "po_h_closed", RailPayoutState.FAILED).code == "account_closed"
    assert wait_for_status(rail, "po_h_ret", RailPayoutState.RETURNED).code == "no_account"
    wait_for_status(rail, "po_h_silent", RailPayoutState.PAID)
    eventually(lambda: len(receiver[0].for_payout("po_h_ret")) == 2)
    assert [e.type for e in receiver[0].for_payout("po_h_ret")] == [
        RailEventType.PAYOUT_PAID,
        RailEventType.PAYOUT_RETURNED,
    ]
    assert receiver[0].for_payout("po_h_silent") == []
    assert admin.inspect("po_h_silent").webhooks[0].state is WebhookState.SUPPRESSED


def test_unavailability_over_http(rail: HttpPaymentRail, admin: SimulatedBankAdmin) -> None:
    admin.make_unavailable(1)
    with pytest.raises(RailUnavailable):
        rail.submit_payout(payout("po_h_flaky"))
    admin.make_unavailable(1, after_processing=True)
    with pytest.raises(RailUnavailable):
        rail.submit_payout(payout("po_h_flaky"))  # stored, but the answer is lost
    first = rail.get_payout("po_h_flaky")
    assert rail.submit_payout(payout("po_h_flaky")).rail_reference == first.rail_reference
    admin.settle_now("po_h_flaky")
    assert admin.paid_count("po_h_flaky") == 1
    assert admin.inspect("po_h_flaky").submissions == 2


def test_controls_over_http(
    rail: HttpPaymentRail, admin: SimulatedBankAdmin, receiver: Receiver
) -> None:
    admin.force_outcome("po_h_forced", RailOutcome.FAILED, code="insufficient_funds")
    admin.force_outcome("po_h_held", RailOutcome.NEVER_SETTLES)
    admin.duplicate_webhooks(1, payout_id="po_h_forced")
    admin.drop_webhooks(1, payout_id="po_h_paid")
    for pid in ("po_h_forced", "po_h_held", "po_h_paid"):
        rail.submit_payout(payout(pid))
    assert admin.settle_now() == 2
    assert rail.get_payout("po_h_forced").code == "insufficient_funds"
    assert rail.get_payout("po_h_held").status is RailPayoutState.PROCESSING
    eventually(lambda: len(receiver[0].for_payout("po_h_forced")) == 2)
    assert admin.inspect("po_h_paid").webhooks[0].state is WebhookState.DROPPED
    assert admin.redeliver_webhooks("po_h_paid") == 1
    eventually(lambda: len(receiver[0].for_payout("po_h_paid")) == 1)

    returned = admin.return_payout("po_h_paid", code="account_frozen")
    assert (returned.status, returned.code) == (RailPayoutState.RETURNED, "account_frozen")
    with pytest.raises(RailRejected, match="not paid"):
        admin.return_payout("po_h_held")

    admin.force_outcome("po_h_held", RailOutcome.RETURNED)
    admin.advance_clock(10)
    assert rail.get_payout("po_h_held").status is RailPayoutState.RETURNED
    assert [p.request.payout_id for p in admin.list_payouts()] == [
        "po_h_forced",
        "po_h_held",
        "po_h_paid",
    ]
    assert admin.paid_count("po_h_unknown") == 0
    with pytest.raises(RailPayoutNotFound):
        admin.inspect("po_h_unknown")

    admin.set_webhook_url(None)
    rail.submit_payout(payout("po_h_nourl"))
    admin.settle_now("po_h_nourl")
    time.sleep(0.2)
    assert admin.inspect("po_h_nourl").webhooks[0].state is WebhookState.PENDING
    admin.set_webhook_url(receiver[1])
    eventually(lambda: len(receiver[0].for_payout("po_h_nourl")) == 1)


def test_a_wrong_api_key_is_refused(service: tuple[SimulatedBank, str]) -> None:
    for key in ("sk_wrong", None):
        with HttpPaymentRail(service[1], key) as client, pytest.raises(RailRejected) as info:
            client.submit_payout(payout("po_h_auth"))
        assert info.value.code == "unauthorized"
    with SimulatedBankAdmin(service[1], "sk_wrong") as admin, pytest.raises(RailRejected):
        admin.settle_now()
    assert service[0].paid_count("po_h_auth") == 0


def test_a_rail_that_does_not_answer_is_unavailable() -> None:
    with HttpPaymentRail(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(RailUnavailable) as info:
            client.submit_payout(payout("po_h_down"))
        assert info.value.retryable
        with pytest.raises(RailUnavailable):
            client.get_payout("po_h_down")


def test_a_wrong_base_url_is_a_permanent_error(service: tuple[SimulatedBank, str]) -> None:
    with HttpPaymentRail(service[1] + "/nowhere", API_KEY) as client:
        with pytest.raises(RailRejected) as info:
            client.submit_payout(payout("po_h_lost"))
        assert not isinstance(info.value, RailPayoutNotFound)


# --- The service as its own process ---------------------------------------------------------------


def start_service(data_dir: Path, webhook_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PAYOUTS_RAIL_SETTLE_SECONDS": "0.3",
        "PAYOUTS_RAIL_RETURN_SECONDS": "0.6",
        "PAYOUTS_RAIL_WEBHOOK_URL": webhook_url,
        "PAYOUTS_RAIL_WEBHOOK_SECRET": SECRET,
        "PAYOUTS_RAIL_WEBHOOK_RETRY_SECONDS": "0.05",
        "PAYOUTS_RAIL_API_KEY": API_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "payment_rail", "--port", "0", "--data-dir", str(data_dir)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                line = proc.stdout.readline()
                if line.startswith("Simulated bank listening on "):
                    return proc, line.rsplit(" ", 1)[1].strip()
                if not line and proc.poll() is not None:
                    break
    proc.kill()
    raise AssertionError(f"the service did not start (exit {proc.wait()})")


def test_the_service_restarts_from_its_data_dir_without_paying_twice(
    tmp_path: Path, receiver: Receiver
) -> None:
    rec, webhook_url = receiver
    proc, url = start_service(tmp_path, webhook_url)
    try:
        with HttpPaymentRail(url, API_KEY) as rail, SimulatedBankAdmin(url, API_KEY) as admin:
            paid = rail.submit_payout(payout("po_svc_paid"))
            admin.settle_now("po_svc_paid")
            eventually(lambda: len(rec.for_payout("po_svc_paid")) == 1)
            # Accepted, not settled, when the bank dies; and its webhook receiver is down.
            admin.force_outcome("po_svc_open", RailOutcome.RETURNED)
            open_ = rail.submit_payout(payout("po_svc_open"))
    finally:
        proc.kill()  # no graceful shutdown: SQLite must already hold everything
        proc.wait()

    with HttpPaymentRail(url) as rail, pytest.raises(RailUnavailable):
        rail.get_payout("po_svc_paid")

    proc, url = start_service(tmp_path, webhook_url)
    try:
        with HttpPaymentRail(url, API_KEY) as rail, SimulatedBankAdmin(url, API_KEY) as admin:
            assert rail.submit_payout(payout("po_svc_paid")) == paid
            assert rail.submit_payout(payout("po_svc_open")) == open_
            with pytest.raises(RailIdempotencyConflict):
                rail.submit_payout(payout("po_svc_paid", amount=7))
            returned = wait_for_status(rail, "po_svc_open", RailPayoutState.RETURNED, timeout=5)
            assert returned.code == "no_account"
            eventually(lambda: len(rec.for_payout("po_svc_open")) == 2)
            assert admin.paid_count("po_svc_paid") == 1
            assert admin.paid_count("po_svc_open") == 1
            assert admin.inspect("po_svc_paid").submissions == 2
        assert len(rec.for_payout("po_svc_paid")) == 1
        # SIGTERM stops it cleanly.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
