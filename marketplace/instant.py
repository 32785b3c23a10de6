"""Instant payouts: their fee, the daily limit, and what a seller can be paid instantly now.

An instant payout of ``amount`` (what reaches the seller's bank) costs the seller a fee on top:
``fee = max(minimum, ceil(amount * fee_bp / 10_000))`` minor units, rounded **up** (in the
platform's favour: a fraction of a cent is never given away). The seller's account is debited
``amount + fee`` in the payout's one pending ledger transaction, which credits payouts in transit
with ``amount`` and the platform's fees revenue with ``fee`` (``marketplace.payouts``).

The daily limit caps the amounts (not the fees) of a seller's instant payouts per UTC day; every
instant payout created that day counts except those that failed or were cancelled (they paid
nothing out). It is summed in PostgreSQL under the seller's payout lock, which every reservation
of the seller takes first, so concurrent requests cannot pass it together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from ledger_core import ValidationFailed
from marketplace.tables import payouts, sellers
from marketplace.types import PayoutState

STANDARD = "standard"
INSTANT = "instant"
METHODS = (STANDARD, INSTANT)

# Payouts that paid (or are paying) something out count towards the day's limit.
_NOT_COUNTED = (str(PayoutState.FAILED), str(PayoutState.CANCELLED))


@dataclass(frozen=True, slots=True)
class InstantTerms:
    """The platform's terms for instant payouts (settings ``PAYOUTS_INSTANT_*``, whose defaults
    these are)."""

    fee_bp: int = 150
    """The fee in basis points of the amount (150 = 1.5 %)."""
    fee_minimum: int = 50
    """The smallest fee, minor units."""
    daily_limit: int = 1_000_000
    """Per seller and UTC day, minor units of payout amounts (a seller may have its own)."""

    def __post_init__(self) -> None:
        if not 0 <= self.fee_bp <= 10_000:
            raise ValueError("the instant fee must be 0-10000 basis points")
        if self.fee_minimum < 0 or self.daily_limit < 0:
            raise ValueError("the instant fee minimum and daily limit must be >= 0")

    def fee(self, amount: int) -> int:
        """The fee of an instant payout of ``amount``: the percentage rounded up, at least the
        minimum."""
        return max(self.fee_minimum, -(-amount * self.fee_bp // 10_000))

    def largest_amount(self, funds: int) -> int:
        """The largest amount whose payout plus fee fits in ``funds`` (0 if none does)."""
        if funds <= self.fee_minimum:
            return 0
        # amount + fee(amount) grows with amount: start from the exact share and step down.
        amount = min(funds - self.fee_minimum, funds * 10_000 // (10_000 + self.fee_bp))
        while amount > 0 and amount + self.fee(amount) > funds:
            amount -= 1
        while amount + 1 + self.fee(amount + 1) <= funds:
            amount += 1
        return max(amount, 0)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValidationFailed("method must be standard or instant", field="method")
    return method


def utc_day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def daily_limit(conn: Connection, terms: InstantTerms, seller_id: str) -> int:
    """The seller's own daily instant limit, else the platform's."""
    own: int | None = conn.execute(
        select(sellers.c.instant_daily_limit).where(sellers.c.id == seller_id)
    ).scalar_one_or_none()
    return terms.daily_limit if own is None else own


def instant_used_today(conn: Connection, seller_id: str, now: datetime) -> int:
    """The amounts of the seller's instant payouts created since the start of ``now``'s UTC
    day, except failed and cancelled ones."""
    start = utc_day_start(now)
    used: int = conn.execute(
        select(func.coalesce(func.sum(payouts.c.amount), 0)).where(
            payouts.c.seller_id == seller_id,
            payouts.c.method == INSTANT,
            payouts.c.created_at >= start,
            payouts.c.created_at < start + timedelta(days=1),
            payouts.c.status.not_in(_NOT_COUNTED),
        )
    ).scalar_one()
    return int(used)


@dataclass(frozen=True, slots=True)
class InstantAvailability:
    """What a seller can be paid instantly now."""

    available: int
    """The largest instant payout now: its amount plus fee fit in the available balance, and
    its amount in what is left of the day's limit."""
    limit: int
    used_today: int

    @property
    def remaining_today(self) -> int:
        return max(self.limit - self.used_today, 0)


def instant_availability(
    conn: Connection, terms: InstantTerms, seller_id: str, available: int, now: datetime
) -> InstantAvailability:
    limit = daily_limit(conn, terms, seller_id)
    used = instant_used_today(conn, seller_id, now)
    payable = min(terms.largest_amount(max(available, 0)), max(limit - used, 0))
    return InstantAvailability(available=payable, limit=limit, used_today=used)
