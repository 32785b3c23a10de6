"""The payment rail: the bank/PSP adapter the platform pays sellers through.

It is the outside world. What it may import: ``signatures``, pydantic and, for the service,
FastAPI and uvicorn; nothing of the platform (an import-linter contract). The platform uses the
``PaymentRail`` interface (``payment_rail.interface``) and gets an implementation from
``open_payment_rail`` (settings in ``payment_rail.settings``):

- ``HttpPaymentRail``: the rail's HTTP API (``PAYOUTS_RAIL_URL``), e.g. the simulated bank run as
  a service (``python -m payment_rail``, ``payment_rail.service``);
- ``SimulatedBank``: the simulated bank in-process (``payment_rail.simulated``).

Webhook receivers verify events with ``construct_event`` (``Rail-Signature`` header).
"""

from __future__ import annotations

from payment_rail.client import HttpPaymentRail, SimulatedBankAdmin
from payment_rail.interface import (
    INSTANT_NOT_SUPPORTED,
    SIGNATURE_HEADER,
    BankAccount,
    InvalidSignature,
    PaymentRail,
    PayoutRequest,
    PayoutSubmission,
    RailError,
    RailEvent,
    RailEventType,
    RailIdempotencyConflict,
    RailMethod,
    RailPayoutNotFound,
    RailPayoutState,
    RailPayoutStatus,
    RailRejected,
    RailUnavailable,
    construct_event,
    sign_webhook,
    verify_webhook,
)
from payment_rail.settings import RailSettings
from payment_rail.simulated import (
    ACCOUNT_CLOSED,
    ACCOUNT_INSTANT_FAILS,
    ACCOUNT_NO_INSTANT,
    ACCOUNT_NO_WEBHOOK,
    ACCOUNT_PAID,
    ACCOUNT_RETURNED,
    TEST_ACCOUNTS,
    TEST_ROUTING_NUMBER,
    RailOutcome,
    SimulatedBank,
    SimulatedBankControls,
    SimulatedPayout,
)


def open_payment_rail(settings: RailSettings | None = None) -> PaymentRail:
    """The platform's rail: ``HttpPaymentRail`` when ``PAYOUTS_RAIL_URL`` is set, else a started
    in-process ``SimulatedBank`` (one per process: fine for one worker, not for several).
    Close it when done."""
    settings = settings or RailSettings()
    if settings.url:
        return HttpPaymentRail(settings.url, settings.api_key)
    return SimulatedBank(settings).start()


def open_test_payment_rail(settings: RailSettings | None = None) -> PaymentRail:
    """The rail of test-mode payouts, always a simulated bank: the service at
    ``PAYOUTS_RAIL_TEST_URL`` when set, else one in-process (with the ``PAYOUTS_RAIL_*`` timings
    and webhook settings). Never ``PAYOUTS_RAIL_URL``: test money is never sent to the live rail.
    Close it when done."""
    settings = settings or RailSettings()
    if settings.test_url:
        return HttpPaymentRail(settings.test_url, settings.test_api_key)
    return SimulatedBank(settings.model_copy(update={"url": None, "api_key": None})).start()


__all__ = [
    "ACCOUNT_CLOSED",
    "ACCOUNT_INSTANT_FAILS",
    "ACCOUNT_NO_INSTANT",
    "ACCOUNT_NO_WEBHOOK",
    "ACCOUNT_PAID",
    "ACCOUNT_RETURNED",
    "INSTANT_NOT_SUPPORTED",
    "SIGNATURE_HEADER",
    "TEST_ACCOUNTS",
    "TEST_ROUTING_NUMBER",
    "BankAccount",
    "HttpPaymentRail",
    "InvalidSignature",
    "PaymentRail",
    "PayoutRequest",
    "PayoutSubmission",
    "RailError",
    "RailEvent",
    "RailEventType",
    "RailIdempotencyConflict",
    "RailMethod",
    "RailOutcome",
    "RailPayoutNotFound",
    "RailPayoutState",
    "RailPayoutStatus",
    "RailRejected",
    "RailSettings",
    "RailUnavailable",
    "SimulatedBank",
    "SimulatedBankAdmin",
    "SimulatedBankControls",
    "SimulatedPayout",
    "construct_event",
    "open_payment_rail",
    "open_test_payment_rail",
    "sign_webhook",
    "verify_webhook",
]
