"""Inputs and results of the marketplace activities, and their names.

Plain dataclasses with no database imports (an import-linter contract keeps it so): workflow
code imports them to call activities by name, the API gets them back from workflow updates.
Amounts are integers in minor units; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Activity names (the workflows call activities by name, so they never import the
# database-bound activity classes).
BOOK_EARNING = "book_earning"
POST_EARNING = "post_earning"
CANCEL_EARNING = "cancel_earning"
EXTEND_HOLD = "extend_hold"
RELEASE_RESERVE = "release_reserve"
SETTLE_HOLDS = "settle_holds"
OPEN_DISPUTE = "open_dispute"
RESOLVE_DISPUTE = "resolve_dispute"

# The stable codes of business errors (ApplicationError.type): never retried.
BUSINESS_ERROR_TYPES = [
    "validation_failed",
    "not_found",
    "seller_not_found",
    "earning_not_found",
    "dispute_not_found",
    "earning_conflict",
    "dispute_conflict",
    "idempotency_conflict",
    "invalid_earning_state",
    "invalid_state_transition",
    "dispute_already_resolved",
    "currency_mismatch",
    "insufficient_balance",
    "unbalanced_transaction",
    "immutable",
]


@dataclass
class BookEarningInput:
    seller_id: str
    order_id: str
    amount: int
    fee: int
    booked_at: datetime
    """The hold runs from here (the workflow's clock) for the seller's hold period."""
    metadata: dict[str, Any] = field(default_factory=dict)


# The inputs below name the earning by seller and order. ``seller_id`` is last and optional only
# because hold workflows of the first shape (which kept their holds in memory) scheduled these
# activities with the order id alone, unique then; such an input is looked up by its order.


@dataclass
class PostEarningInput:
    order_id: str
    at: datetime
    """When the hold ended (workflow time); a rolling reserve runs from here."""
    seller_id: str | None = None


@dataclass
class CancelEarningInput:
    order_id: str
    seller_id: str | None = None


@dataclass
class ExtendHoldInput:
    order_id: str
    hold_until: datetime
    seller_id: str | None = None


@dataclass
class ReleaseReserveInput:
    order_id: str
    seller_id: str | None = None


@dataclass
class SettleHoldsInput:
    seller_id: str
    at: datetime
    """Workflow time: every hold that ended by then is posted, every reserve due released."""


@dataclass
class HoldsSummary:
    """What the hold workflow shows (search attribute OpenHolds, its details): the seller's
    running totals as of ``as_of``."""

    on_hold: int = 0
    on_hold_count: int = 0
    in_reserve: int = 0
    in_reserve_count: int = 0
    as_of: datetime | None = None

    @property
    def open_holds(self) -> int:
        return self.on_hold_count + self.in_reserve_count


@dataclass
class SettleHoldsResult:
    posted: int
    released: int
    more: bool
    """More was due than the activity's time allowed: run it again at once."""
    timer_at: datetime | None
    """When to look next (None: nothing on hold)."""
    summary: HoldsSummary = field(default_factory=HoldsSummary)


@dataclass
class EarningResult:
    """An earning as the marketplace keeps it (marketplace.Earning, serialisable)."""

    order_id: str
    seller_id: str
    currency: str
    amount: int
    fee: int
    net: int
    status: str
    """on_hold | posted | cancelled | refunded"""
    hold_until: datetime
    ledger_transaction_id: str
    posted_at: datetime | None = None
    cancelled_at: datetime | None = None
    reserve_amount: int = 0
    reserve_release_at: datetime | None = None
    reserve_released_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def reserve_open(self) -> bool:
        return self.reserve_release_at is not None and self.reserve_released_at is None


@dataclass
class OpenDisputeInput:
    dispute_id: str
    seller_id: str
    order_id: str
    amount: int
    deadline: datetime
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResolveDisputeInput:
    dispute_id: str
    outcome: str
    """won | lost"""


@dataclass
class DisputeResult:
    """A dispute as the marketplace keeps it (marketplace.Dispute, serialisable)."""

    id: str
    seller_id: str
    order_id: str
    currency: str
    amount: int
    reason: str
    status: str
    """open | won | lost"""
    deadline: datetime
    ledger_transaction_id: str
    resolved_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
