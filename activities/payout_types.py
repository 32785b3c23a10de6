"""Inputs, results and names of the payout and refund activities.

Plain dataclasses with no database imports (workflow code and the API import them). Amounts are
integers in minor units; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activities.types import BUSINESS_ERROR_TYPES, EarningResult

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
    "payout_account_not_found",
    "nothing_to_pay",
    "payout_not_found",
    "payout_conflict",
    "invalid_payout_state",
    "refund_conflict",
    "refund_exceeds_earning",
    "refund_not_found",
    "rail_idempotency_conflict",
]


@dataclass
class ReservePayoutInput:
    payout_id: str
    seller_id: str
    amount: int | None = None
    """None: the seller's whole available balance."""
    origin: str = "manual"
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


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


@dataclass
class RefundEarningInput:
    refund_id: str
    order_id: str
    amount: int | None = None
    """Gross, minor units; None: all that is left of the earning."""
    metadata: dict[str, Any] = field(default_factory=dict)
    seller_id: str | None = None
    """None only in inputs of hold workflows of the first shape (the order names the earning)."""


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
