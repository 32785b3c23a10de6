"""The marketplace domain on top of ledger_core: platform ledgers per currency, sellers, earnings
with hold periods and rolling reserves, disputes, and the sellers' balances.

Synchronous SQLAlchemy Core; the caller owns the database transaction. Knows nothing of HTTP or
Temporal: the hold and dispute workflows drive it through activities, the API reads it.
"""

from marketplace.errors import (
    DisputeAlreadyResolved,
    DisputeConflict,
    DisputeNotFound,
    EarningConflict,
    EarningNotFound,
    InvalidEarningState,
    SellerExists,
    SellerNotFound,
)
from marketplace.service import (
    UNCHANGED,
    Marketplace,
    Unchanged,
    dispute_external_id,
    earning_external_id,
    reserve_external_id,
    seller_external_id,
)
from marketplace.types import (
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    Earning,
    EarningStatus,
    Page,
    PlatformAccount,
    PlatformLedger,
    RollingReserve,
    Seller,
    SellerBalances,
)

__all__ = [
    "UNCHANGED",
    "Dispute",
    "DisputeAlreadyResolved",
    "DisputeConflict",
    "DisputeNotFound",
    "DisputeOutcome",
    "DisputeStatus",
    "Earning",
    "EarningConflict",
    "EarningNotFound",
    "EarningStatus",
    "InvalidEarningState",
    "Marketplace",
    "Page",
    "PlatformAccount",
    "PlatformLedger",
    "RollingReserve",
    "Seller",
    "SellerBalances",
    "SellerExists",
    "SellerNotFound",
    "Unchanged",
    "dispute_external_id",
    "earning_external_id",
    "reserve_external_id",
    "seller_external_id",
]
