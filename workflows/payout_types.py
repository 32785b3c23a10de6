"""The contract of the payout workflow (id ``payout/<payout id>``): its input, its statuses and
search attribute. Shared by whoever starts a payout: the API (manual payouts) and the scheduled
payout runs (Temporal Schedules)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey

from activities.payout_types import PayoutResult

PAYOUT_WORKFLOW = "PayoutWorkflow"
PAYOUT_STATUS = SearchAttributeKey.for_keyword("PayoutStatus")


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


def payout_workflow_id(payout_id: str) -> str:
    return f"payout/{payout_id}"


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
    """After a return: whether a payout schedule was paused (None: not applicable)."""


def refund_workflow_id(refund_id: str) -> str:
    return f"refund/{refund_id}"


def refund_update_id(refund_id: str) -> str:
    return f"refund:{refund_id}"


@dataclass
class RefundEarningRequest:
    """Refund ``amount`` (gross, minor units; None: all that is left) of an order."""

    refund_id: str
    order_id: str
    amount: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RefundInput:
    refund_id: str
    seller_id: str
    order_id: str
    amount: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
