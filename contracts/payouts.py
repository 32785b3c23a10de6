"""The payout workflow (id ``payout/<payout id>``), the refund workflow (id
``refund/<refund id>``) and their activities: names, inputs, results, statuses, search attribute.

Shared by whoever starts a payout (the API for manual payouts, the scheduled payout runs), the
workflows and the worker's activities. Amounts are integers in minor units; times are
timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey

from contracts.common import BUSINESS_ERROR_TYPES
from contracts.holds import EarningResult

PAYOUT_WORKFLOW = "PayoutWorkflow"
RESERVED_UPDATE = "reserved"
CANCEL_UPDATE = "cancel"
RAIL_EVENT_SIGNAL = "rail_event"
STATE_QUERY = "state"
REFUND_WORKFLOW = "RefundWorkflow"

PAYOUT_STATUS = SearchAttributeKey.for_keyword("PayoutStatus")
PAYOUT_METHOD = SearchAttributeKey.for_keyword("PayoutMethod")
"""standard | instant: set by the starter, and by the workflow itself (scheduled payouts)."""

RESERVE_PAYOUT = "reserve_payout"
SUBMIT_PAYOUT = "submit_payout_to_rail"
GET_RAIL_STATUS = "get_rail_payout_status"
MARK_PAYOUT_PAID = "mark_payout_paid"
MARK_PAYOUT_FAILED = "mark_payout_failed"
MARK_PAYOUT_RETURNED = "mark_payout_returned"
CANCEL_PAYOUT = "cancel_payout"
PAUSE_PAYOUT_SCHEDULE = "pause_payout_schedule"
REFUND_EARNING = "refund_earning"

# Business errors (never retried) of payouts and refunds, next to the marketplace's.
PAYOUT_BUSINESS_ERROR_TYPES = [
    *BUSINESS_ERROR_TYPES,
    "payout_account_missing",
    "payout_account_failed",
    "payout_account_not_found",
    "nothing_to_pay",
    "payout_not_found",
    "payout_conflict",
    "invalid_payout_state",
    "refund_conflict",
    "refund_exceeds_earning",
    "refund_not_found",
    "rail_idempotency_conflict",
    "instant_not_supported",
    "instant_limit_exceeded",
]


# Failure codes that say the destination itself is dead (closed, not found, an invalid number):
# paying it again fails again, so such a failure marks the seller's payout account ``failed`` and
# pauses the seller's payout schedule until a new account is set. Any other failure code (the bank
# could not process it this time) changes neither; a rail that is unavailable never fails a payout
# at all (the workflow retries).
DESTINATION_FAILURES: frozenset[str] = frozenset(
    {
        "account_closed",
        "no_account",
        "invalid_account_number",
        "invalid_destination",
    }
)


def is_destination_failure(code: str | None) -> bool:
    return code in DESTINATION_FAILURES


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"  # the seller's money is reserved (pending debit), not yet at the rail
    PROCESSING = "processing"  # submitted to the rail, outcome awaited
    PAID = "paid"  # the rail paid it: the debit is posted
    FAILED = "failed"  # the rail refused or failed it: the debit is archived, money available
    RETURNED = "returned"  # paid, then returned by the bank: reversed, seller's schedule paused
    CANCELLED = "cancelled"  # an operator cancelled it before submission: archived


class PayoutOrigin(enum.StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"


class PayoutMethod(enum.StrEnum):
    STANDARD = "standard"  # the batch rail: settles in days
    INSTANT = "instant"  # a real-time rail: seconds, any day, any hour, for a fee


def payout_workflow_id(payout_id: str) -> str:
    return f"payout/{payout_id}"


def refund_workflow_id(refund_id: str) -> str:
    return f"refund/{refund_id}"


def refund_update_id(refund_id: str) -> str:
    return f"refund:{refund_id}"


# ---------------------------------------------------------------- payout activities


@dataclass
class ReservePayoutInput:
    payout_id: str
    seller_id: str
    amount: int | None = None
    """None: the seller's whole available balance."""
    origin: str = "manual"
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    method: str = PayoutMethod.STANDARD


@dataclass
class PayoutResult:
    """A payout as the platform keeps it (``marketplace.Payout``, serialisable). The destination
    is masked: the full account number never leaves the worker."""

    id: str
    seller_id: str
    currency: str
    amount: int
    status: str
    """pending | processing | paid | failed | returned | cancelled"""
    origin: str
    account_number_masked: str
    routing_number: str
    holder_name: str
    ledger_transaction_id: str
    created_at: datetime
    return_transaction_id: str | None = None
    rail_reference: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    submitted_at: datetime | None = None
    paid_at: datetime | None = None
    failed_at: datetime | None = None
    returned_at: datetime | None = None
    cancelled_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    method: str = PayoutMethod.STANDARD
    fee: int = 0
    """Instant: the fee (minor units) the seller paid on top of ``amount``."""


@dataclass
class ReservePayoutResult:
    payout: PayoutResult
    poll_seconds: float
    """The worker's PAYOUTS_RAIL_POLL_SECONDS: how long to wait for a webhook before asking."""
    return_window_seconds: float
    """The worker's PAYOUTS_RETURN_WINDOW (days, in seconds): how long a paid payout may come
    back."""


@dataclass
class PayoutIdInput:
    payout_id: str


@dataclass
class MarkPayoutInput:
    payout_id: str
    code: str
    reason: str


@dataclass
class RailStatusResult:
    status: str
    """processing | paid | failed | returned | unknown (the rail does not know it)"""
    code: str | None = None
    reason: str | None = None


@dataclass
class PauseScheduleInput:
    seller_id: str
    note: str


# ---------------------------------------------------------------- the payout workflow


@dataclass
class PayoutWorkflowInput:
    """Pay ``amount`` (minor units; None: the seller's whole available balance at the time the
    money is reserved) to the seller's payout account."""

    payout_id: str
    seller_id: str
    amount: int | None = None
    origin: str = PayoutOrigin.MANUAL
    # The scheduled run that started it, if any (``payout_runs.id``).
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Optional overrides of the worker's settings (PAYOUTS_RAIL_POLL_SECONDS,
    # PAYOUTS_RETURN_WINDOW), mostly for tests; None: the worker's.
    poll_seconds: float | None = None
    return_window_seconds: float | None = None
    # Keep the reserved payout pending this long before submitting it: a window in which an
    # operator can still cancel it. 0: submit at once.
    submit_after_seconds: float = 0
    reserved: ReservePayoutResult | None = None
    """The reservation already made (a scheduled run reserves in its decision's transaction):
    the workflow then runs no reserve activity. None: the workflow reserves."""
    method: str = PayoutMethod.STANDARD
    """standard | instant (a real-time rail, for a fee; never waits for a batch window)."""


@dataclass
class RailEventSignal:
    """A verified rail webhook event (``payment_rail.RailEvent``), as the workflow gets it."""

    event_id: str
    type: str
    """payout.paid | payout.failed | payout.returned"""
    payout_id: str
    occurred_at: datetime
    code: str | None = None
    reason: str | None = None


@dataclass
class CancelPayoutRequest:
    note: str = ""


@dataclass
class PayoutWorkflowState:
    payout_id: str
    seller_id: str
    status: str
    """reserving | pending | processing | paid | failed | returned | cancelled"""
    payout: PayoutResult | None = None
    error_code: str | None = None
    """Why nothing was reserved (nothing_to_pay, payout_account_missing, ...)."""
    error_message: str | None = None
    rail_events: int = 0
    """Distinct rail webhook events received."""
    rail_polls: int = 0
    return_window_ends: datetime | None = None
    schedule_paused: bool | None = None
    """After a return or a failure of the destination: whether a payout schedule was paused
    (None: not applicable)."""


# ---------------------------------------------------------------- refunds


@dataclass
class RefundEarningInput:
    """Refund ``amount`` (gross, minor units; None: all that is left of the earning) of an
    order: the refund workflow's input, the hold workflow's ``refund_earning`` update request and
    the ``refund_earning`` activity's input (the same fields)."""

    refund_id: str
    order_id: str
    amount: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    seller_id: str | None = None
    """None only in requests and inputs of hold workflows of the first shape (the order names
    the earning)."""


@dataclass
class RefundResult:
    id: str
    order_id: str
    seller_id: str
    currency: str
    amount: int
    fee_amount: int
    seller_amount: int
    kind: str
    """during_hold | after_posting"""
    status: str
    ledger_transaction_id: str | None
    created_at: datetime
    earning: EarningResult
    metadata: dict[str, Any] = field(default_factory=dict)
