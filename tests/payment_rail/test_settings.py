"""``PAYOUTS_RAIL_*`` settings and ``open_payment_rail``."""

from __future__ import annotations

import os

import pytest

from payment_rail import (
    ACCOUNT_PAID,
    HttpPaymentRail,
    PaymentRail,
    RailPayoutState,
    RailSettings,
    SimulatedBank,
    open_payment_rail,
)
from payment_rail.simulated import wait_for_status
from tests.payment_rail.conftest import payout


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("PAYOUTS_RAIL_"):
            monkeypatch.delenv(name)
    settings = RailSettings()
    assert (settings.settle_seconds, settings.return_seconds) == (2.0, 10.0)
    assert settings.url is None and settings.webhook_url is None
    assert settings.webhook_secret == "whsec_simulated_bank_dev"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOUTS_RAIL_SETTLE_SECONDS", "0.1")
    monkeypatch.setenv("PAYOUTS_RAIL_RETURN_SECONDS", "30")
    monkeypatch.setenv("PAYOUTS_RAIL_WEBHOOK_SECRET", "whsec_env")
    monkeypatch.setenv("PAYOUTS_RAIL_URL", "http://rail.internal:8100")
    settings = RailSettings()
    assert (settings.settle_seconds, settings.return_seconds) == (0.1, 30.0)
    assert (settings.webhook_secret, settings.url) == ("whsec_env", "http://rail.internal:8100")


def test_open_payment_rail_picks_http_when_a_url_is_set() -> None:
    rail = open_payment_rail(RailSettings(url="http://127.0.0.1:9", api_key="k"))
    try:
        assert isinstance(rail, HttpPaymentRail)
        assert isinstance(rail, PaymentRail)
    finally:
        rail.close()


def test_open_payment_rail_runs_the_bank_in_process_otherwise() -> None:
    rail = open_payment_rail(RailSettings(settle_seconds=0.05))
    try:
        assert isinstance(rail, SimulatedBank)
        rail.submit_payout(payout("po_open", ACCOUNT_PAID))
        wait_for_status(rail, "po_open", RailPayoutState.PAID, timeout=2)
    finally:
        rail.close()
        rail.close()  # idempotent
