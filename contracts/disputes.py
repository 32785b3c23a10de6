"""The dispute workflow (id ``dispute/<dispute id>``) and its activities: names, inputs, results.

Amounts are integers in minor units; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DISPUTE_WORKFLOW = "DisputeWorkflow"
OPENED_UPDATE = "opened"
RESOLVE_UPDATE = "resolve"
RESOLVE_SIGNAL = "resolve_signal"
# A test clock's advance passed the dispute's deadline (a dispute of a seller on a test clock).
DEADLINE_SIGNAL = "deadline_passed"
STATE_QUERY = "state"

OPEN_DISPUTE = "open_dispute"
RESOLVE_DISPUTE = "resolve_dispute"


def dispute_workflow_id(dispute_id: str) -> str:
    return f"dispute/{dispute_id}"


@dataclass
class DisputeInput:
    """The dispute workflow's input, and (the same fields) its ``open_dispute`` activity's."""

    dispute_id: str
    seller_id: str
    order_id: str
    amount: int
    deadline: datetime
    """Unresolved by then: lost."""
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    test_clock_id: str | None = None
    """The seller's test clock: ``deadline`` is in its time, and the clock's advance tells the
    workflow when it has passed (``DEADLINE_SIGNAL``) instead of a timer."""


@dataclass
class ResolveDisputeInput:
    dispute_id: str
    outcome: str
    """won | lost"""


@dataclass
class ResolveDisputeRequest:
    """The ``resolve`` update's and ``resolve_signal``'s argument."""

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
