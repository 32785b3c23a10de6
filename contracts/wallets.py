"""The wallet expiry workflow (id ``wallet-expiries/<wallet id>``) and its activity: names,
inputs and results.

The workflow keeps time only: the wallet's lots and their expiry dates are in PostgreSQL
(``marketplace.wallets``), and neither its state nor its continue-as-new input grows with them.
Times are timezone-aware UTC datetimes; amounts integers in minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WALLET_EXPIRY_WORKFLOW = "WalletExpiryWorkflow"
WAKE_SIGNAL = "wake"
STATE_QUERY = "state"

# Activity name (the workflow calls it by name, never importing the database-bound class).
EXPIRE_WALLET_LOTS = "expire_wallet_lots"

# Continue as new when the server suggests it or the history reaches this many events (about
# 10 a turn).
DEFAULT_HISTORY_LIMIT = 2_000


def wallet_expiries_workflow_id(wallet_id: str) -> str:
    return f"wallet-expiries/{wallet_id}"


@dataclass
class WalletExpiryInput:
    wallet_id: str
    history_limit: int = DEFAULT_HISTORY_LIMIT
    expired_count: int = 0
    """Lots this workflow (and the runs it continued) expired: a counter, not a list."""


@dataclass
class ExpireWalletLotsInput:
    wallet_id: str
    at: datetime
    """Workflow time: every lot whose expiry is at or before it is expired."""


@dataclass
class ExpireWalletLotsResult:
    expired_lots: int
    expired_amount: int
    more: bool
    """More was due than one batch: run again at once."""
    timer_at: datetime | None
    """The earliest expiry still ahead (None: nothing expires; wait for a wake)."""


@dataclass
class WalletExpiryState:
    """What the expiry workflow shows of itself (its ``state`` query)."""

    wallet_id: str
    timer_at: datetime | None = None
    expired_count: int = 0
    turns: int = 0
    """Turns of this run (it continues as new before its history grows large)."""
