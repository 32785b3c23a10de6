"""The seller hold workflow (id ``seller-holds/<seller id>``) and the earning activities: names,
inputs, results, update requests and search attributes.

Amounts are integers in minor units; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey

SELLER_HOLD_WORKFLOW = "SellerHoldWorkflow"
# Updates, signal and queries of the hold workflow.
RELEASE_HOLD_UPDATE = "release_hold"
EXTEND_HOLD_UPDATE = "extend_hold"
CANCEL_HOLD_UPDATE = "cancel_hold"
ADD_EARNING_UPDATE = "add_earning"
REFUND_EARNING_UPDATE = "refund_earning"
WAKE_SIGNAL = "wake"
STATE_QUERY = "state"
HOLDS_QUERY = "holds"

# Activity names (the workflows call activities by name, so they never import the
# database-bound activity classes).
BOOK_EARNING = "book_earning"
POST_EARNING = "post_earning"
CANCEL_EARNING = "cancel_earning"
EXTEND_HOLD = "extend_hold"
RELEASE_RESERVE = "release_reserve"
SETTLE_HOLDS = "settle_holds"

OPEN_HOLDS = SearchAttributeKey.for_int("OpenHolds")

# The hold workflow continues as new when the server suggests it or its history reaches this
# many events, whichever comes first (about 10 events a turn; well under 1 MB).
DEFAULT_HISTORY_LIMIT = 2_000
# Finished order ids a hold workflow of the first shape remembers (across continue-as-new) to
# recognise a late duplicate without a database round trip.
RECENT_ORDERS_KEPT = 500


def seller_holds_workflow_id(seller_id: str) -> str:
    return f"seller-holds/{seller_id}"


def add_earning_update_id(order_id: str) -> str:
    """Temporal deduplicates updates by id, so a retried add_earning for an order is one update."""
    return f"earning:{order_id}"


# ---------------------------------------------------------------- activities


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
class OrderEarningInput:
    """The earning of an order: the input of ``cancel_earning`` and ``release_reserve``."""

    order_id: str
    seller_id: str | None = None


@dataclass
class ExtendHoldInput:
    order_id: str
    hold_until: datetime
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
    """When to look next (None: nothing on hold, or a test clock's advance wakes it)."""
    summary: HoldsSummary = field(default_factory=HoldsSummary)
    test_clock_id: str | None = None
    """The seller's test clock (its advance wakes the workflow; no timer in wall time)."""


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


# ---------------------------------------------------------------- the workflow


@dataclass
class Hold:
    """What a hold workflow of the first shape keeps per earning until it has nothing left to do
    for it: the hold (``status`` on_hold, due at ``hold_until``), then, for a seller with a
    rolling reserve, the reserve (``status`` posted, due at ``reserve_release_at``)."""

    order_id: str
    amount: int
    fee: int
    net: int
    status: str
    """on_hold | posted (then only its reserve is still held)"""
    hold_until: datetime
    ledger_transaction_id: str
    reserve_amount: int = 0
    reserve_release_at: datetime | None = None

    @property
    def due_at(self) -> datetime | None:
        if self.status == "on_hold":
            return self.hold_until
        return self.reserve_release_at

    @staticmethod
    def from_earning(earning: EarningResult) -> Hold:
        return Hold(
            order_id=earning.order_id,
            amount=earning.amount,
            fee=earning.fee,
            net=earning.net,
            status=earning.status,
            hold_until=earning.hold_until,
            ledger_transaction_id=earning.ledger_transaction_id,
            reserve_amount=earning.reserve_amount,
            reserve_release_at=earning.reserve_release_at if earning.reserve_open else None,
        )


@dataclass
class SellerHoldInput:
    seller_id: str
    history_limit: int = DEFAULT_HISTORY_LIMIT
    # Carried over continue-as-new by the first shape (workflows.seller_holds_v1) only; the
    # database shape carries nothing per order.
    holds: list[Hold] = field(default_factory=list)
    recent_order_ids: list[str] = field(default_factory=list)
    posted_count: int = 0


@dataclass
class HoldsState:
    """What a hold workflow shows of itself (its ``state`` query)."""

    seller_id: str
    timer_at: datetime | None = None
    """When it looks next (None: nothing on hold, it waits for a wake)."""
    summary: HoldsSummary = field(default_factory=HoldsSummary)
    posted_count: int = 0
    """Earnings this run (and the runs it continued) posted."""


@dataclass
class AddEarningRequest:
    order_id: str
    amount: int
    """The order's gross amount, minor units."""
    fee: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReleaseHoldRequest:
    order_id: str


@dataclass
class ExtendHoldRequest:
    order_id: str
    hold_until: datetime
    """The new end; must be later than the current one."""


@dataclass
class CancelHoldRequest:
    order_id: str
