"""The payment rail as the platform sees it: a bank/PSP payouts API behind a small interface.

The platform pays a seller by submitting a ``PayoutRequest`` to a ``PaymentRail``; the rail answers
with a ``PayoutSubmission`` (accepted, ``processing``) and later reports the outcome twice over:

- by webhook: a signed ``RailEvent`` (``payout.paid``, ``payout.failed``, ``payout.returned``)
  POSTed to the platform. Verify it with ``construct_event`` (or ``verify_webhook``) before
  trusting it. Webhooks may arrive late, more than once, or never.
- by status: ``get_payout`` returns the current ``RailPayoutStatus``; the fallback when no webhook
  arrives.

Methods (``RailMethod``): ``standard`` rides the batch rail (settles in days at a real bank);
``instant`` a real-time rail (seconds, any day, any hour). Not every destination takes instant
payments: ``supports_instant`` asks before paying, and an instant payout to a destination that
does not is refused at submission (``RailRejected``, code ``instant_not_supported``).

Idempotency: the payout id is the idempotency key. Submitting the same id again returns the same
submission and never pays twice; the same id with another amount, currency, destination or method
raises ``RailIdempotencyConflict``. A request the rail rejects (``RailRejected``) is not stored,
so the same id may be submitted again once corrected.

Errors (``RailError``; each has a stable ``code`` and ``retryable``):

- ``RailUnavailable``: transient (network, timeout, 5xx). Retry with the same payout id; the
  request may or may not have reached the rail, which is exactly why the id is the key.
- ``RailRejected``: permanent, e.g. an invalid destination or amount (``code`` says which).
- ``RailIdempotencyConflict``: the payout id was used for a different payout.
- ``RailPayoutNotFound``: ``get_payout`` for an id the rail never accepted.

Every method is synchronous (the platform's activities run in threads). Amounts are integers in
minor units; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import TypeAdapter, ValidationError

import signatures

# --- Data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankAccount:
    """Where a payout goes. The account number is left out of ``repr`` (logs show ``last4``)."""

    account_number: str = field(repr=False)
    routing_number: str
    holder_name: str

    @property
    def last4(self) -> str:
        return self.account_number[-4:]


class RailMethod(StrEnum):
    """How the money travels: the batch rail, or a real-time one."""

    STANDARD = "standard"
    INSTANT = "instant"


INSTANT_NOT_SUPPORTED = "instant_not_supported"
"""``RailRejected.code`` of an instant payout to a destination that takes no instant payments."""


@dataclass(frozen=True)
class PayoutRequest:
    """One payout to submit. ``payout_id`` is the platform's id and the idempotency key."""

    payout_id: str
    amount: int
    """Minor units (cents), > 0."""
    currency: str
    """ISO 4217 code, upper case (``USD``)."""
    destination: BankAccount
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Free-form; neither description nor metadata takes part in the idempotency check."""
    method: RailMethod = RailMethod.STANDARD
    """Part of the idempotency check: the same id over another rail is a conflict."""


class RailPayoutState(StrEnum):
    """Where a payout stands at the rail. ``paid`` may still become ``returned`` later."""

    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"


@dataclass(frozen=True)
class PayoutSubmission:
    """The rail's answer to ``submit_payout``: accepted, with the rail's own reference."""

    payout_id: str
    rail_reference: str
    """The rail's id for the payout (what appears on bank statements next to the payout id)."""
    status: RailPayoutState
    """The status when first accepted (``processing``); a replay returns the same submission."""
    amount: int
    currency: str
    created_at: datetime


@dataclass(frozen=True)
class RailPayoutStatus:
    """The current state of a payout at the rail (``get_payout``)."""

    payout_id: str
    rail_reference: str
    status: RailPayoutState
    amount: int
    currency: str
    created_at: datetime
    paid_at: datetime | None = None
    failed_at: datetime | None = None
    returned_at: datetime | None = None
    code: str | None = None
    """Why it failed or was returned (``account_closed``, ``no_account``, ...); else None."""
    reason: str | None = None
    """A human-readable explanation of ``code``."""


class RailEventType(StrEnum):
    PAYOUT_PAID = "payout.paid"
    PAYOUT_FAILED = "payout.failed"
    PAYOUT_RETURNED = "payout.returned"


@dataclass(frozen=True)
class RailEvent:
    """A webhook event. ``id`` is unique per event and stays the same on redelivery, so a
    receiver can drop duplicates by it (or, better, make handling idempotent per payout)."""

    id: str
    type: RailEventType
    payout_id: str
    occurred_at: datetime
    code: str | None = None
    reason: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(_EVENT.dump_python(self, mode="json"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> RailEvent:
        """Parse a webhook body; ``ValueError`` if it is not a rail event."""
        try:
            return _EVENT.validate_json(body)
        except ValidationError as exc:
            raise ValueError(f"not a payment rail event: {exc}") from exc


_EVENT = TypeAdapter(RailEvent)

# --- Errors ---------------------------------------------------------------------------------------


class RailError(Exception):
    """Base of every error the rail raises. ``code`` is stable; ``retryable`` says whether the
    same call may succeed later."""

    code: str = "rail_error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class RailUnavailable(RailError):
    """Transient: the rail could not be reached or did not answer. Retry with the same id."""

    code = "rail_unavailable"
    retryable = True


class RailRejected(RailError):
    """Permanent: the rail refuses this request (``code``: ``invalid_amount``,
    ``invalid_currency``, ``invalid_destination``, ``instant_not_supported``, ``invalid_request``,
    ``unauthorized``, or a code forced by a test). Nothing was stored; retrying the same request
    fails the same way."""

    code = "rail_rejected"


class RailIdempotencyConflict(RailError):
    """The payout id was already submitted with another amount, currency or destination."""

    code = "rail_idempotency_conflict"


class RailPayoutNotFound(RailError):
    """The rail knows no payout with this id."""

    code = "rail_payout_not_found"


# --- The interface --------------------------------------------------------------------------------


@runtime_checkable
class PaymentRail(Protocol):
    """What the platform needs from a bank or PSP. Implementations: ``SimulatedBank``
    (in-process) and ``HttpPaymentRail`` (over HTTP, e.g. to the simulated bank's service)."""

    def submit_payout(self, request: PayoutRequest) -> PayoutSubmission:
        """Submit a payout; idempotent by ``request.payout_id``.

        Raises ``RailRejected``, ``RailIdempotencyConflict`` or ``RailUnavailable``."""
        ...

    def get_payout(self, payout_id: str) -> RailPayoutStatus:
        """The payout's current status. Raises ``RailPayoutNotFound`` or ``RailUnavailable``."""
        ...

    def supports_instant(self, destination: BankAccount) -> bool:
        """Whether the destination takes instant payments (asked before money is reserved for
        one). Raises ``RailUnavailable``, or ``RailRejected`` for a malformed destination."""
        ...

    def close(self) -> None:
        """Release connections and threads. Idempotent."""
        ...


# --- Webhook signatures ---------------------------------------------------------------------------

SIGNATURE_HEADER = "Rail-Signature"
"""The HTTP header carrying the signature: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``."""

DEFAULT_TOLERANCE_SECONDS = signatures.DEFAULT_TOLERANCE_SECONDS
InvalidSignature = signatures.InvalidSignature


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Rail-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return signatures.sign(secret, timestamp, body)


def verify_webhook(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a webhook's ``Rail-Signature`` header against the raw request body
    (``signatures.verify``: constant-time, any matching ``v1``, timestamp within ``tolerance``
    seconds of ``now``). Raises ``InvalidSignature``."""
    signatures.verify(
        secret, header, body, header_name=SIGNATURE_HEADER, tolerance=tolerance, now=now
    )


def construct_event(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> RailEvent:
    """Verify a webhook (``verify_webhook``) and parse its body into a ``RailEvent``.

    Raises ``InvalidSignature``, or ``ValueError`` for a correctly signed body that is not an
    event (a bug on the sender's side)."""
    verify_webhook(secret, header, body, tolerance=tolerance, now=now)
    return RailEvent.from_json(body)


# --- JSON (the HTTP service and client share these) ----------------------------------------------

_REQUEST = TypeAdapter(PayoutRequest)
_ACCOUNT = TypeAdapter(BankAccount)
_SUBMISSION = TypeAdapter(PayoutSubmission)
_STATUS = TypeAdapter(RailPayoutStatus)


def request_to_json(request: PayoutRequest) -> dict[str, Any]:
    return _REQUEST.dump_python(request, mode="json")  # type: ignore[no-any-return]


def request_from_json(data: object) -> PayoutRequest:
    """Raises ``RailRejected(code="invalid_request")`` for a malformed body."""
    try:
        return _REQUEST.validate_python(data)
    except ValidationError as exc:
        raise RailRejected(f"malformed payout request: {exc}", code="invalid_request") from exc


def account_to_json(account: BankAccount) -> dict[str, Any]:
    return _ACCOUNT.dump_python(account, mode="json")  # type: ignore[no-any-return]


def account_from_json(data: object) -> BankAccount:
    """Raises ``RailRejected(code="invalid_request")`` for a malformed body."""
    try:
        return _ACCOUNT.validate_python(data)
    except ValidationError as exc:
        raise RailRejected(f"malformed bank account: {exc}", code="invalid_request") from exc


def submission_to_json(submission: PayoutSubmission) -> dict[str, Any]:
    return _SUBMISSION.dump_python(submission, mode="json")  # type: ignore[no-any-return]


def submission_from_json(data: object) -> PayoutSubmission:
    return _SUBMISSION.validate_python(data)


def status_to_json(status: RailPayoutStatus) -> dict[str, Any]:
    return _STATUS.dump_python(status, mode="json")  # type: ignore[no-any-return]


def status_from_json(data: object) -> RailPayoutStatus:
    return _STATUS.validate_python(data)
