"""The contract of the payout workflow (id ``payout/<payout id>``): its input, its statuses and
search attribute. Shared by whoever starts a payout: the API (manual payouts) and the scheduled
payout runs (Temporal Schedules)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey

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
