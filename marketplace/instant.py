"""Instant payouts: their fee, the daily limit, an instant payout's amount and fee when it is
reserved, and what a seller can be paid instantly now.

An instant payout of ``amount`` (what reaches the seller's bank) costs the seller a fee on top:
``fee = max(minimum, ceil(amount * fee_bp / 10_000))`` minor units, rounded **up** (in the
platform's favour: a fraction of a cent is never given away). ``instant_amount`` reckons a
reservation's amount (the largest that fits when none is asked), its fee, and counts it towards
the day's limit; the seller's account is then debited ``amount + fee`` in the payout's one pending
ledger transaction, which credits payouts in transit with ``amount`` and the platform's fees
revenue with ``fee`` (``Payouts.reserve_payout``, ``marketplace.payouts``).

The daily limit caps the amounts (not the fees) of a seller's instant payouts per UTC day; every
instant payout created that day counts except those that failed or were cancelled (they paid
nothing out). PostgreSQL counts it in ``instant_payout_days`` (one row per seller and day): a
reservation adds its amount with a conditional upsert that refuses to pass the limit, in the
reservation's transaction and under the seller's payout lock, so concurrent requests cannot pass
it together; a failure or a cancellation takes the amount off again (``uncount_instant_payout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import BalanceConditionFailed, ValidationFailed
from marketplace.errors import InstantLimitExceeded, NothingToPay
from marketplace.tables import instant_payout_days, sellers
from marketplace.types import SellerBalances

STANDARD = "standard"
INSTANT = "instant"
METHODS = (STANDARD, INSTANT)


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


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def daily_limit(conn: Connection, terms: InstantTerms, seller_id: str) -> int:
    """The seller's own daily instant limit, else the platform's."""
    own: int | None = conn.execute(
        select(sellers.c.instant_daily_limit).where(sellers.c.id == seller_id)
    ).scalar_one_or_none()
    return terms.daily_limit if own is None else own


def instant_used(conn: Connection, seller_id: str, day: date) -> int:
    """What the seller's instant payouts of ``day`` (UTC) count towards its limit."""
    used: int | None = conn.execute(
        select(instant_payout_days.c.amount).where(
            instant_payout_days.c.seller_id == seller_id, instant_payout_days.c.day == day
        )
    ).scalar_one_or_none()
    return used or 0


def count_instant(conn: Connection, seller_id: str, day: date, amount: int, limit: int) -> bool:
    """Add an instant payout's amount to its day, unless that passes ``limit``: one conditional
    upsert, so the check and the count are one atomic step. False: refused (the caller raises,
    and its transaction, which may have inserted the day's first row, rolls back)."""
    t = instant_payout_days
    stmt = pg_insert(t).values(seller_id=seller_id, day=day, amount=amount)
    counted = conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.c.seller_id, t.c.day],
            set_={"amount": t.c.amount + stmt.excluded.amount},
            where=t.c.amount + stmt.excluded.amount <= limit,
        ).returning(t.c.amount)
    ).one_or_none()
    # The day's first payout inserts without the condition: the total says.
    return counted is not None and counted.amount <= limit


def uncount_instant(conn: Connection, seller_id: str, day: date, amount: int) -> None:
    """A failed or cancelled instant payout no longer counts towards its day's limit."""
    t = instant_payout_days
    conn.execute(
        t.update()
        .where(t.c.seller_id == seller_id, t.c.day == day)
        .values(amount=t.c.amount - amount)
    )


def instant_amount(
    conn: Connection,
    terms: InstantTerms,
    seller_id: str,
    amount: int | None,
    available: int,
    now: datetime,
) -> tuple[int, int]:
    """The instant payout's amount and fee, counted towards the day's limit (under the
    seller's payout lock, which the caller holds)."""
    day = utc_day(now)
    limit = daily_limit(conn, terms, seller_id)
    remaining = max(limit - instant_used(conn, seller_id, day), 0)
    if amount is None:
        amount = min(terms.largest_amount(max(available, 0)), remaining)
        if amount <= 0:
            if remaining <= 0:
                raise InstantLimitExceeded(
                    f"seller {seller_id!r} has used its daily instant limit of {limit}; "
                    "0 remains today",
                    remaining=0,
                    limit=limit,
                )
            raise NothingToPay(
                f"seller {seller_id!r} has nothing available to pay out instantly "
                f"(available {available}, the fee is at least {terms.fee_minimum})",
                available=available,
            )
    elif amount > remaining:
        raise InstantLimitExceeded(
            f"an instant payout of {amount} would pass seller {seller_id!r}'s daily instant "
            f"limit of {limit}: {remaining} remains today",
            remaining=remaining,
            limit=limit,
        )
    fee = terms.fee(amount)
    if amount + fee > available:
        raise BalanceConditionFailed(
            f"seller {seller_id!r} has {available} available, less than {amount} plus the "
            f"instant fee of {fee}",
            available=available,
        )
    if not count_instant(conn, seller_id, day, amount, limit):
        raise InstantLimitExceeded(
            f"an instant payout of {amount} would pass seller {seller_id!r}'s daily instant "
            f"limit of {limit}",
            limit=limit,
        )
    return amount, fee


def uncount_instant_payout(conn: Connection, payout: Row[Any]) -> None:
    """A failed or cancelled instant payout paid nothing out: it no longer counts towards
    its day's limit (a standard payout never counted)."""
    if payout.method == INSTANT:
        uncount_instant(conn, payout.seller_id, utc_day(payout.created_at), payout.amount)


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


def instant_availability(terms: InstantTerms, balances: SellerBalances) -> InstantAvailability:
    """From the seller's balances (``Sellers.seller_balances`` reads its own limit and today's
    instant payouts in the same statement)."""
    own = balances.instant_daily_limit
    limit = terms.daily_limit if own is None else own
    used = balances.instant_used_today
    payable = min(terms.largest_amount(max(balances.available, 0)), max(limit - used, 0))
    return InstantAvailability(available=payable, limit=limit, used_today=used)
