"""Input and result of the payout-run activity (what one firing of a seller's payout schedule
decides), and its name. Plain dataclasses with no database imports: the payout-run workflow
imports them to call the activity by name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DECIDE_PAYOUT_RUN = "decide_payout_run"


@dataclass
class DecidePayoutRunInput:
    run_id: str
    """``<seller id>:<scheduled time, ISO 8601 UTC>``: one decision per firing."""
    seller_id: str
    scheduled_at: datetime
    minimum_amount: int
    """Pay only when the available balance is at least this (minor units; at least 1 anyway)."""


@dataclass
class PayoutRunResult:
    """What the run decided (``payout_runs`` row): ``started`` with a payout id and amount, or
    ``skipped`` with a reason (``no_payout_account``, ``below_minimum``, ``nothing_available``,
    ``negative_balance``)."""

    run_id: str
    seller_id: str
    scheduled_at: datetime
    outcome: str
    payout_id: str | None = None
    amount: int | None = None
    reason: str | None = None
    available: int | None = None
    """The seller's available balance when the run decided (not stored; for the workflow's
    summary)."""
