"""Timestamped HMAC-SHA256 webhook signatures (the scheme Stripe made common).

A sender signs ``"<unix seconds>.<raw body>"`` with a shared secret and sends
``t=<unix seconds>,v1=<hex HMAC-SHA256>`` in a header. A receiver recomputes the MAC over the raw
body, compares in constant time, and rejects timestamps outside a tolerance, which bounds replays.
Several ``v1`` entries may be sent while a secret is being rotated; any match is accepted.

What it may import: the standard library only; nothing of the platform, not even
``payment_rail`` (an import-linter contract). Both sides use it: the simulated bank's webhooks to
the platform (``Rail-Signature``) and the platform's webhooks to its subscribers
(``Payouts-Signature``).
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "InvalidSignature", "sign", "verify"]

DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """A webhook failed verification. ``reason`` says why (safe to log, not to echo to the
    sender in detail)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds).

    The MAC covers ``"<timestamp>.<body>"``, so the timestamp cannot be changed to replay an old
    delivery outside the tolerance."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    header_name: str = "signature",
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a signature header against the raw request body; raises ``InvalidSignature``.

    Accepts any ``v1`` entry that matches; compares in constant time; rejects a timestamp more
    than ``tolerance`` seconds from ``now`` (default: the current time) in either direction.
    ``header_name`` only names the header in error messages."""
    if not header:
        raise InvalidSignature(f"missing {header_name} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature("malformed signature header")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("malformed timestamp in signature header") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise InvalidSignature("no timestamp in signature header")
    if not signatures:
        raise InvalidSignature("no v1 signature in signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature(
            f"timestamp outside the tolerance ({int(current - timestamp)} s from now, "
            f"tolerance {tolerance:g} s)"
        )
    expected = _mac(secret, timestamp, body)
    # Check every entry (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise InvalidSignature("signature does not match the body and secret")
