"""Domain types of the marketplace: what callers pass in and get back."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from ledger_core.types import Balances, NormalBalance, RunningTotals

T = TypeVar("T")


class EarningStatus(enum.StrEnum):
    ON_HOLD = "on_hold"  # pending ledger transaction, hold period running
    POSTED = "posted"  # hold ended: the transaction is posted
    CANCELLED = "cancelled"  # refunded during the hold: the transaction is archived
    REFUNDED = "refunded"  # refunded after posting (issue 4: reversal)


class DisputeStatus(enum.StrEnum):
    OPEN = "open"  # pending debit on the seller: available drops, posted does not
    WON = "won"  # debit archived
    LOST = "lost"  # debit posted


class DisputeOutcome(enum.StrEnum):
    WON = "won"
    LOST = "lost"


class PlatformAccount(enum.StrEnum):
    """The platform's system accounts, one set per currency ledger.

    Normal balances (each ledger sums to zero: the debit-normal balances equal the credit-normal
    ones after every transaction, since every transaction balances):

    * ``clearing`` (debit): money the platform has received, or will receive, from the PSP for
      orders. The only asset the marketplace flows start from.
    * ``fees_revenue`` (credit): the platform's fees on orders.
    * ``payouts_in_transit`` (credit): sellers' money on its way to their banks (issue 4): a
      positive balance is what the platform owes the rail until the bank statement shows it left
      clearing; reconciliation then moves it out (debit in transit, credit clearing).
    * ``rolling_reserve`` (credit): seller money held back after posting, until released.
    * ``disputes`` (credit): chargebacks: money the card network takes back from sellers.
    """

    CLEARING = "clearing"
    FEES_REVENUE = "fees_revenue"
    PAYOUTS_IN_TRANSIT = "payouts_in_transit"
    ROLLING_RESERVE = "rolling_reserve"
    DISPUTES = "disputes"

    @property
    def normal_balance(self) -> NormalBalance:
        return NormalBalance.DEBIT if self is PlatformAccount.CLEARING else NormalBalance.CREDIT

    @property
    def external_id(self) -> str:
        return f"platform:{self.value}"


@dataclass(frozen=True, slots=True)
class PlatformLedger:
    """The ledger of one currency and its system accounts' ids."""

    currency: str
    ledger_id: uuid.UUID
    accounts: dict[PlatformAccount, uuid.UUID]
    livemode: bool = True
    """The platform keeps a ledger per currency and mode: test money never meets live money."""

    def account(self, role: PlatformAccount) -> uuid.UUID:
        return self.accounts[role]


@dataclass(frozen=True, slots=True)
class RollingReserve:
    """Hold back ``percent_bp`` basis points (1/100 of a percent) of each earning's net for
    ``period`` after it posts."""

    percent_bp: int
    period: timedelta


@dataclass(frozen=True, slots=True)
class Seller:
    id: str
    name: str
    currency: str
    currency_exponent: int
    hold_period: timedelta
    rolling_reserve: RollingReserve | None
    ledger_id: uuid.UUID
    ledger_account_id: uuid.UUID
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    instant_daily_limit: int | None = None
    """The seller's own daily limit of instant payouts (minor units); None: the platform's."""
    livemode: bool = True
    """False: a test-mode seller (and everything it owns), seen only by test keys."""
    test_clock_id: str | None = None
    """The test clock whose time is this seller's now (None: the wall clock)."""


@dataclass(frozen=True, slots=True)
class Earning:
    order_id: str
    seller_id: str
    currency: str
    amount: int
    """The order's gross amount, minor units."""
    fee: int
    """The platform's fee, minor units (0 <= fee <= amount)."""
    net: int
    """What the seller earns: amount - fee."""
    status: EarningStatus
    hold_until: datetime
    posted_at: datetime | None
    cancelled_at: datetime | None
    ledger_transaction_id: uuid.UUID
    reserve_percent_bp: int
    reserve_period: timedelta | None
    reserve_amount: int
    """The part of net held back after posting (0: no reserve)."""
    reserve_transaction_id: uuid.UUID | None
    reserve_release_at: datetime | None
    reserve_released_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def reserve_open(self) -> bool:
        return self.reserve_transaction_id is not None and self.reserve_released_at is None


@dataclass(frozen=True, slots=True)
class Hold:
    """Money of a seller held back until ``ends_at``: an earning in its hold period (``kind``
    earning, ends at ``hold_until``) or, after it posted, its rolling reserve (``kind`` reserve,
    ends at ``reserve_release_at``)."""

    seller_id: str
    order_id: str
    kind: str
    amount_held: int
    """Net on hold (less the seller's share of refunds during the hold), or the reserve."""
    ends_at: datetime
    hold_until: datetime
    reserve_release_at: datetime | None
    amount: int
    fee: int
    net: int
    ledger_transaction_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    seller_id: str
    order_id: str
    currency: str
    amount: int
    """The disputed amount, minor units, debited from the seller."""
    reason: str
    status: DisputeStatus
    deadline: datetime
    ledger_transaction_id: uuid.UUID
    resolved_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SellerBalances:
    """The three ledger views of the seller's account (DESIGN.md), and what holds money back.

    ``on_hold``: net of earnings still in their hold period (inside pending, not posted).
    ``in_reserve``: open rolling reserves; ``in_dispute``: open chargebacks; ``in_transit``:
    payouts reserved and not yet paid (pending debits: inside posted, not available). Kept as
    running totals by the database, so reading them is O(1).
    """

    seller_id: str
    currency: str
    currency_exponent: int
    pending: int
    posted: int
    available: int
    on_hold: int
    in_reserve: int
    in_dispute: int
    in_transit: int
    ledger_account_id: uuid.UUID
    lock_version: int
    totals: RunningTotals
    """The seller account's running totals (each view's credits and debits: ``views``)."""
    instant_daily_limit: int | None = None
    """The seller's own daily instant limit (None: the platform's)."""
    instant_used_today: int = 0
    """Amounts of today's (UTC) instant payouts that count towards the limit."""

    @property
    def views(self) -> Balances:
        return self.totals.balances(NormalBalance.CREDIT)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of a list ordered by a text key; ``next_after`` continues after it, if any."""

    items: list[T]
    next_after: str | None


class PayoutState(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"
    CANCELLED = "cancelled"


def mask(account_number: str) -> str:
    """``••••6789``: only the last 4 digits."""
    return "\u2022" * 4 + account_number[-4:]


@dataclass(frozen=True, slots=True)
class PayoutAccount:
    seller_id: str
    account_number: str
    """The full number, for the rail only. Responses use ``masked_account_number``."""
    routing_number: str
    holder_name: str
    created_at: datetime
    updated_at: datetime
    status: str = "active"
    """active | failed (a payout to it failed because of the destination: not paid again until a
    new payout account is set)."""
    failure_code: str | None = None
    failed_payout_id: str | None = None
    failed_at: datetime | None = None

    @property
    def last4(self) -> str:
        return self.account_number[-4:]

    @property
    def masked_account_number(self) -> str:
        return mask(self.account_number)

    def __repr__(self) -> str:  # never log the full number
        return f"PayoutAccount(seller_id={self.seller_id!r}, account=…{self.last4})"


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    seller_id: str
    currency: str
    amount: int
    """Minor units, > 0."""
    status: PayoutState
    origin: str
    account_number: str
    """The destination as it was when the payout was made (full: for the rail only)."""
    routing_number: str
    holder_name: str
    ledger_transaction_id: uuid.UUID
    return_transaction_id: uuid.UUID | None
    rail_reference: str | None
    failure_code: str | None
    failure_reason: str | None
    submitted_at: datetime | None
    paid_at: datetime | None
    failed_at: datetime | None
    returned_at: datetime | None
    cancelled_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    method: str = "standard"
    """standard (the batch rail) | instant (a real-time rail, for ``fee``)."""
    fee: int = 0
    """Instant: the fee, minor units, debited from the seller on top of ``amount``."""
    item_count: int | None = None
    """Its lines (``marketplace.payout_items``); None: reserved before payouts were itemized."""

    @property
    def masked_account_number(self) -> str:
        return mask(self.account_number)

    def __repr__(self) -> str:
        return f"Payout(id={self.id!r}, seller_id={self.seller_id!r}, status={self.status})"


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    order_id: str
    seller_id: str
    currency: str
    amount: int
    """Gross refunded, minor units."""
    fee_amount: int
    """The platform fee's share (taken back from fees revenue)."""
    seller_amount: int
    """The seller's share: amount - fee_amount."""
    kind: str
    """during_hold | after_posting"""
    status: str
    ledger_transaction_id: uuid.UUID | None
    """after_posting: the debit; during_hold: the remainder booked again (None if nothing left)."""
    metadata: dict[str, Any]
    created_at: datetime
    completed_at: datetime | None
    earning_status: str
    """The earning's status after the refund (on_hold, cancelled, posted, refunded)."""
    earning_refunded_amount: int


# ---------------------------------------------------------------------------------- wallets


class WalletSystemAccount(enum.StrEnum):
    """The platform's accounts for wallets, in the platform ledger of each currency (created on
    first use, next to ``PlatformAccount``'s):

    * ``wallet_funding`` (debit): money owed to the platform by card networks and banks for
      wallet top-ups; a top-up debits it (pending until its funding settles).
    * ``wallet_spends`` (credit): what wallets spent in the app (owed to the merchants or earned
      by the platform); a refund of a spend debits it back.
    * ``wallet_breakage`` (credit): stored value that expired unspent.
    """

    FUNDING = "wallet_funding"
    SPENDS = "wallet_spends"
    BREAKAGE = "wallet_breakage"

    @property
    def normal_balance(self) -> NormalBalance:
        return NormalBalance.DEBIT if self is WalletSystemAccount.FUNDING else NormalBalance.CREDIT

    @property
    def external_id(self) -> str:
        return f"platform:{self.value}"


class LotStatus(enum.StrEnum):
    PENDING = "pending"  # a top-up whose funding has not settled: pending credit, not spendable
    SETTLED = "settled"  # posted: what remains of it is available
    FAILED = "failed"  # the funding failed: the pending credit is archived
    EXPIRED = "expired"  # its expiry passed: what remained went to breakage


@dataclass(frozen=True, slots=True)
class Wallet:
    id: str
    owner: str
    name: str
    currency: str
    currency_exponent: int
    ledger_id: uuid.UUID
    ledger_account_id: uuid.UUID
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    livemode: bool = True
    """False: a test-mode wallet (and everything it owns), seen only by test keys."""
    test_clock_id: str | None = None
    """The test clock whose time is this wallet's now (None: the wall clock)."""


@dataclass(frozen=True, slots=True)
class WalletBalances:
    """The wallet account's three views (DESIGN.md): pending includes top-ups whose funding has
    not settled; posted and available do not (a wallet has no pending debits, so they are equal
    unless a spend is ever made pending). ``expiring`` is what remains of settled lots that carry
    an expiry; ``next_expiry_at`` the earliest of them."""

    wallet_id: str
    currency: str
    currency_exponent: int
    ledger_account_id: uuid.UUID
    lock_version: int
    totals: RunningTotals
    expiring: int
    next_expiry_at: datetime | None

    @property
    def views(self) -> Balances:
        return self.totals.balances(NormalBalance.CREDIT)

    @property
    def pending(self) -> int:
        return self.views.pending.amount

    @property
    def posted(self) -> int:
        return self.views.posted.amount

    @property
    def available(self) -> int:
        return self.views.available.amount


@dataclass(frozen=True, slots=True)
class WalletLot:
    """Money that came into a wallet: a top-up (``kind`` top_up) or a transfer in (``kind``
    transfer, one lot per expiry date of the money moved)."""

    id: str
    wallet_id: str
    kind: str
    amount: int
    remaining: int
    """What is left to spend (of a settled lot; a pending one's whole amount once it settles)."""
    expired_amount: int
    status: LotStatus
    expires_at: datetime | None
    ledger_transaction_id: uuid.UUID
    transfer_id: str | None
    metadata: dict[str, Any]
    settled_at: datetime | None
    failed_at: datetime | None
    expired_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SpentLot:
    lot_id: str
    amount: int
    refunded: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class WalletSpend:
    id: str
    wallet_id: str
    amount: int
    refunded_amount: int
    description: str
    ledger_transaction_id: uuid.UUID
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    lots: tuple[SpentLot, ...]
    """The lots it took from, in the order it took them (soonest expiry first)."""


@dataclass(frozen=True, slots=True)
class WalletRefund:
    id: str
    spend_id: str
    wallet_id: str
    amount: int
    ledger_transaction_id: uuid.UUID
    metadata: dict[str, Any]
    created_at: datetime
    spend_refunded_amount: int
    """The spend's refunded amount after this refund."""


@dataclass(frozen=True, slots=True)
class WalletTransfer:
    id: str
    from_wallet_id: str
    to_wallet_id: str
    currency: str
    amount: int
    description: str
    ledger_transaction_id: uuid.UUID
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExpiryTurn:
    """A turn of a wallet's expiry workflow: what it expired, and when to look next."""

    expired_lots: int
    expired_amount: int
    more: bool
    """More was due than one batch: run again at once."""
    timer_at: datetime | None
    """The earliest expiry still ahead (None: nothing in the wallet expires)."""
    test_clock_id: str | None = None
    """The wallet's test clock: ``timer_at`` is in its time, and its advance wakes the wallet."""


class TestClockStatus(enum.StrEnum):
    __test__ = False  # no test class for pytest

    READY = "ready"  # everything due by frozen_time has happened
    ADVANCING = "advancing"  # stepping towards advance_to


@dataclass(frozen=True, slots=True)
class TestClock:
    """A time of its own for the sellers and wallets created on it (``marketplace.test_clocks``)."""

    __test__ = False  # no test class for pytest

    id: str
    name: str
    frozen_time: datetime
    """The clock's objects' now."""
    status: TestClockStatus
    advance_to: datetime | None
    """The target of the advance under way (None when ready)."""
    advance_count: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
