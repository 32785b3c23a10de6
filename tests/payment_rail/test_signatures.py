"""Webhook signatures: ``Rail-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payment_rail import (
    InvalidSignature,
    RailEvent,
    RailEventType,
    construct_event,
    sign_webhook,
    verify_webhook,
)

SECRET = "whsec_abc"
NOW = 1_800_000_000
BODY = RailEvent(
    id="evt_1",
    type=RailEventType.PAYOUT_FAILED,
    payout_id="po_1",
    occurred_at=datetime(2027, 1, 15, 12, 0, tzinfo=UTC),
    code="account_closed",
    reason="The destination account is closed.",
).to_json()


def test_a_good_signature_verifies_and_the_event_parses() -> None:
    header = sign_webhook(SECRET, NOW, BODY)
    assert header.startswith(f"t={NOW},v1=")
    verify_webhook(SECRET, header, BODY, now=NOW + 10)
    event = construct_event(SECRET, header, BODY, now=NOW)
    assert event.type is RailEventType.PAYOUT_FAILED
    assert (event.payout_id, event.code) == ("po_1", "account_closed")
    assert event.occurred_at == datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


def test_a_tampered_body_is_rejected() -> None:
    header = sign_webhook(SECRET, NOW, BODY)
    tampered = BODY.replace(b"payout.failed", b"payout.paid")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, header, tampered, now=NOW)


def test_a_wrong_secret_is_rejected() -> None:
    header = sign_webhook("whsec_other", NOW, BODY)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, header, BODY, now=NOW)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    signature = sign_webhook(SECRET, NOW - 3_600, BODY).split(",")[1]
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, f"t={NOW},{signature}", BODY, now=NOW)


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_a_timestamp_outside_the_tolerance_is_rejected(age: int) -> None:
    header = sign_webhook(SECRET, NOW - age, BODY)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_webhook(SECRET, header, BODY, now=NOW)
    # The same delivery inside a wider tolerance is fine: only the age was wrong.
    verify_webhook(SECRET, header, BODY, now=NOW, tolerance=abs(age) + 1)


def test_the_tolerance_defaults_to_five_minutes_of_the_real_clock() -> None:
    import time

    fresh = int(time.time())
    verify_webhook(SECRET, sign_webhook(SECRET, fresh - 299, BODY), BODY)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_webhook(SECRET, sign_webhook(SECRET, fresh - 400, BODY), BODY)


def test_any_matching_v1_signature_is_accepted_while_rotating_secrets() -> None:
    old = sign_webhook("whsec_old", NOW, BODY).split(",")[1]
    new = sign_webhook(SECRET, NOW, BODY).split(",")[1]
    verify_webhook(SECRET, f"t={NOW},{old},{new}", BODY, now=NOW)
    verify_webhook("whsec_old", f"t={NOW},{old},{new}", BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Rail-Signature header"),
        ("", "missing Rail-Signature header"),
        ("garbage", "malformed signature header"),
        ("t=abc,v1=00", "malformed timestamp"),
        ("v1=00", "no timestamp"),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v0=00", "no v1 signature"),
    ],
)
def test_malformed_headers_are_rejected_with_a_reason(header: str | None, reason: str) -> None:
    with pytest.raises(InvalidSignature) as info:
        verify_webhook(SECRET, header, BODY, now=NOW)
    assert reason in info.value.reason


def test_a_signed_body_that_is_not_an_event_is_a_value_error() -> None:
    body = b'{"hello": "world"}'
    with pytest.raises(ValueError, match="not a payment rail event"):
        construct_event(SECRET, sign_webhook(SECRET, NOW, body), body, now=NOW)
