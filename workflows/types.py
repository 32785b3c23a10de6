"""Inputs, update requests, query results and search attributes of the marketplace workflows.

Plain dataclasses, safe to import from workflow code, the worker and the API alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey

from activities.types import DisputeResult, EarningResult, HoldsSummary

# Custom search attributes (registered on the server by `payouts run` / the test fixtures).
SELLER_ID = SearchAttributeKey.for_keyword("SellerId")
OPEN_HOLDS = SearchAttributeKey.for_int("OpenHolds")

# The hold workflow continues as new when the server suggests it or its history reaches this
# many events, whichever comes first (about 10 events a turn; well under 1 MB).
DEFAULT_HISTORY_LIMIT = 2_000
# Finished order ids a hold workflow remembers (across continue-as-new) to recognise a late
# duplicate without a database round trip; the database's idempotency covers older ones.
RECENT_ORDERS_KEPT = 500


def seller_holds_workflow_id(seller_id: str) -> str:
    return f"seller-holds/{seller_id}"


def dispute_workflow_id(dispute_id: str) -> str:
    return f"dispute/{dispute_id}"


def add_earning_update_id(order_id: str) -> str:
    """Temporal deduplicates updates by id, so a retried add_earning for an order is one update."""
    return f"earning:{order_id}"


# ---------------------------------------------------------------- seller hold workflow


@dataclass
class Hold:
    """What a hold workflow keeps per earning until it has nothing left to do for it: the hold
    (``status`` on_hold, due at ``hold_until``), then, for a seller with a rolling reserve, the
    reserve (``status`` posted, due at ``reserve_release_at``)."""

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


# ---------------------------------------------------------------- dispute workflow


@dataclass
class DisputeInput:
    dispute_id: str
    seller_id: str
    order_id: str
    amount: int
    deadline: datetime
    """Unresolved by then: lost."""
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResolveDisputeRequest:
    outcome: str
    """won | lost"""


@dataclass
class DisputeState:
    dispute_id: str
    seller_id: str
    status: str
    """opening | open | won | lost | failed"""
    deadline: datetime
    outcome: str | None = None
    resolved_by: str | None = None
    """operator | deadline"""
    dispute: DisputeResult | None = None
    error: str | None = None
