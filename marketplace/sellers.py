"""Sellers and what every part of the marketplace builds on.

``MarketCore`` is the shared core: the ledger service it writes through, the platform's ledger
per currency and mode (live, test) with its system accounts (created on first use), a seller's
ledger account and mode, the
seller's lock that every writer of a seller's money takes first, reading a seller, and the
balance event after a change. ``Sellers`` adds the sellers' life cycle (create, list, update) and
their balances. The other domains (``marketplace.earnings``, ``marketplace.disputes``) subclass
the core; ``marketplace.service.Marketplace`` is all of them on one core.

Every method takes a SQLAlchemy ``Connection`` inside a database transaction the caller owns and
never commits.
"""

from __future__ import annotations

import enum
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import LedgerService, NormalBalance, RunningTotals, ValidationFailed
from ledger_core.checks import MAX_AMOUNT
from ledger_core.currencies import resolve_exponent
from ledger_core.schema import ledger_accounts, ledgers
from marketplace import errors
from marketplace.checks import check_id, utc_now
from marketplace.events import record_available_change
from marketplace.rows import from_row, page
from marketplace.tables import platform_ledgers, sellers, test_clocks
from marketplace.types import (
    Page,
    PlatformAccount,
    PlatformLedger,
    RollingReserve,
    Seller,
    SellerBalances,
)

MAX_PERIOD = timedelta(days=366)


class Unchanged(enum.Enum):
    """Marks an ``update_seller`` argument that is left as it is (``None`` means "remove")."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


def seller_external_id(seller_id: str) -> str:
    return f"seller:{seller_id}"


class MarketCore:
    """What the marketplace's domains share. Stateless apart from the ``LedgerService`` it writes
    through and its caches; one instance per process."""

    def __init__(self, ledger: LedgerService | None = None) -> None:
        self.ledger = ledger or LedgerService()
        # What never changes once created (a platform ledger's accounts; a seller's ledger
        # account and currency): cached per process, so hot paths skip the lookups.
        self._platforms: dict[tuple[str, bool], PlatformLedger] = {}
        self._seller_accounts: dict[str, tuple[uuid.UUID, str, bool]] = {}
        # Sellers on no test clock (a seller's clock is fixed at creation): their now is the
        # wall clock's without a query.
        self._unclocked: set[str] = set()
        self._cache_lock = threading.Lock()

    def platform_ledger(self, conn: Connection, currency: str, *, livemode: bool) -> PlatformLedger:
        """The platform's ledger for ``currency`` in a mode (``livemode`` False: the test
        ledger, a ledger of its own) with its system accounts, created on first use.

        Race-safe: creation is serialised by a transaction-scoped advisory lock per currency and
        mode, and the system accounts are created idempotently by external_id.
        """
        cached = self._platforms.get((currency, livemode))
        if cached is not None:
            return cached
        resolve_exponent(currency, None)  # validates the code
        ledger_id = self._platform_ledger_id(conn, currency, livemode)
        if ledger_id is None:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"platform_ledger:{currency}" + ("" if livemode else ":test")},
            )
            ledger_id = self._platform_ledger_id(conn, currency, livemode)
            if ledger_id is None:
                test = "" if livemode else " (test mode)"
                ledger = self.ledger.create_ledger(
                    conn,
                    name=f"Platform {currency}{test}",
                    currency=currency,
                    description=f"The marketplace's money in {currency}{test}",
                    metadata={"kind": "platform"},
                    livemode=livemode,
                )
                conn.execute(
                    platform_ledgers.insert().values(
                        currency=currency,
                        livemode=livemode,
                        ledger_id=ledger.id,
                        created_at=utc_now(),
                    )
                )
                ledger_id = ledger.id
        rows = conn.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.external_id).where(
                ledger_accounts.c.ledger_id == ledger_id,
                ledger_accounts.c.external_id.in_([r.external_id for r in PlatformAccount]),
            )
        ).all()
        by_external = {r.external_id: r.id for r in rows}
        accounts: dict[PlatformAccount, uuid.UUID] = {}
        for role in PlatformAccount:
            account_id = by_external.get(role.external_id)
            if account_id is None:
                account_id = self.ledger.create_account(
                    conn,
                    ledger_id=ledger_id,
                    name=f"Platform {role.value.replace('_', ' ')} ({currency})",
                    normal_balance=role.normal_balance,
                    external_id=role.external_id,
                    metadata={"kind": "platform", "role": role.value},
                ).id
            accounts[role] = account_id
        platform = PlatformLedger(
            currency=currency, ledger_id=ledger_id, accounts=accounts, livemode=livemode
        )
        if len(accounts) == len(PlatformAccount) and by_external.keys() >= {
            r.external_id for r in PlatformAccount
        }:
            # Only what was committed before this transaction is cached (a rollback could undo
            # what it created).
            with self._cache_lock:
                self._platforms[(currency, livemode)] = platform
        return platform

    def lock_seller(self, conn: Connection, seller_id: str) -> None:
        """Lock the seller's running totals (``seller_balances``) until the database transaction
        ends. Every writer of a seller's money takes this lock before the ledger's accounts (a
        booking's earnings insert takes it by its trigger), so writers of one seller queue here
        and the platform accounts they all touch are locked only by whoever holds it: no lock
        cycle, whatever order their statements come in."""
        conn.execute(_LOCK_SELLER, {"seller": seller_id})

    def seller_account(self, conn: Connection, seller_id: str) -> tuple[uuid.UUID, str]:
        """The seller's ledger account and currency (``SellerNotFound`` if unknown)."""
        account_id, currency, _ = self._seller_account(conn, seller_id)
        return account_id, currency

    def seller_platform(self, conn: Connection, seller_id: str) -> PlatformLedger:
        """The platform ledger of the seller's currency and mode (``SellerNotFound`` if
        unknown)."""
        _, currency, livemode = self._seller_account(conn, seller_id)
        return self.platform_ledger(conn, currency, livemode=livemode)

    def seller_livemode(self, conn: Connection, seller_id: str) -> bool:
        """The seller's mode (False: test mode), remembered (``SellerNotFound`` if unknown)."""
        return self._seller_account(conn, seller_id)[2]

    def _seller_account(self, conn: Connection, seller_id: str) -> tuple[uuid.UUID, str, bool]:
        cached = self._seller_accounts.get(seller_id)
        if cached is not None:
            return cached
        row = conn.execute(
            select(sellers.c.ledger_account_id, sellers.c.currency, sellers.c.livemode).where(
                sellers.c.id == seller_id
            )
        ).one_or_none()
        if row is None:
            raise errors.seller_not_found(seller_id)
        with self._cache_lock:
            if len(self._seller_accounts) > 500_000:
                self._seller_accounts.clear()
            self._seller_accounts[seller_id] = (row.ledger_account_id, row.currency, row.livemode)
        return row.ledger_account_id, row.currency, row.livemode

    def seller_clock(self, conn: Connection, seller_id: str) -> tuple[str, datetime] | None:
        """The seller's test clock and its time (``marketplace.test_clocks``), or None for a
        seller on the wall clock (or unknown). The one place a seller's now is resolved."""
        if seller_id in self._unclocked:
            return None
        row = conn.execute(_SELLER_CLOCK, {"seller": seller_id}).one_or_none()
        if row is None:
            return None
        if row.test_clock_id is None:
            with self._cache_lock:
                if len(self._unclocked) > 500_000:
                    self._unclocked.clear()
                self._unclocked.add(seller_id)
            return None
        return row.test_clock_id, row.frozen_time

    def seller_clock_time(self, conn: Connection, seller_id: str) -> datetime | None:
        """The time of the seller's test clock, or None for a seller on the wall clock."""
        clock = self.seller_clock(conn, seller_id)
        return clock[1] if clock is not None else None

    def seller_now(self, conn: Connection, seller_id: str) -> datetime:
        """The seller's now: its test clock's time, else the wall clock's."""
        return self.seller_clock_time(conn, seller_id) or utc_now()

    @staticmethod
    def _platform_ledger_id(conn: Connection, currency: str, livemode: bool) -> uuid.UUID | None:
        value: uuid.UUID | None = conn.execute(
            select(platform_ledgers.c.ledger_id).where(
                platform_ledgers.c.currency == currency, platform_ledgers.c.livemode == livemode
            )
        ).scalar_one_or_none()
        return value

    def get_seller(
        self, conn: Connection, seller_id: str, *, livemode: bool | None = None
    ) -> Seller:
        """The seller; with ``livemode``, a seller of the other mode is not found either."""
        row = self._seller_row(conn, seller_id)
        if row is None or (livemode is not None and row.livemode != livemode):
            raise errors.seller_not_found(seller_id)
        return _seller(row)

    @staticmethod
    def _seller_row(conn: Connection, seller_id: str) -> Row[Any] | None:
        return conn.execute(_seller_query().where(sellers.c.id == seller_id)).one_or_none()

    def note_available_balance(self, conn: Connection, seller_id: str) -> None:
        """After a change of the seller's money, in its transaction: record
        ``balance.available_changed`` if the available balance moved since the last one reported
        (marketplace.events)."""
        account_id, currency = self.seller_account(conn, seller_id)
        record_available_change(conn, seller_id=seller_id, account_id=account_id, currency=currency)


class Sellers(MarketCore):
    """Sellers: create, read, list, change, and their balances."""

    def create_seller(
        self,
        conn: Connection,
        *,
        seller_id: str,
        name: str,
        currency: str,
        hold_period: timedelta = timedelta(days=7),
        rolling_reserve: RollingReserve | None = None,
        metadata: dict[str, Any] | None = None,
        livemode: bool = True,
        test_clock_id: str | None = None,
    ) -> Seller:
        """Create a seller and its credit-normal ledger account (external_id ``seller:<id>``)
        in the platform ledger of its currency and mode (``livemode`` False: test mode).
        ``test_clock_id``: the seller lives on that test clock's time (``test_clock_not_found``
        if there is none; test mode only).

        The same request again returns the seller; other attributes raise ``SellerExists``, and
        so does an id taken in the other mode (ids are one namespace).
        """
        check_id(seller_id, "id")
        if not name.strip():
            raise ValidationFailed("name must not be empty", field="name")
        hold_seconds = _check_period(hold_period, "hold_period", allow_zero=True)
        reserve_bp, reserve_seconds = _check_reserve(rolling_reserve)
        metadata = metadata or {}

        existing = self._seller_row(conn, seller_id)
        if existing is None:
            check_test_clock(conn, test_clock_id, livemode=livemode)
            platform = self.platform_ledger(conn, currency, livemode=livemode)
            account = self.ledger.create_account(
                conn,
                ledger_id=platform.ledger_id,
                name=f"Seller {seller_id}",
                normal_balance=NormalBalance.CREDIT,
                external_id=seller_external_id(seller_id),
                metadata={"kind": "seller", "seller_id": seller_id},
            )
            now = utc_now()
            inserted = conn.execute(
                pg_insert(sellers)
                .values(
                    id=seller_id,
                    name=name,
                    currency=currency,
                    hold_period_seconds=hold_seconds,
                    reserve_percent_bp=reserve_bp,
                    reserve_period_seconds=reserve_seconds,
                    ledger_account_id=account.id,
                    test_clock_id=test_clock_id,
                    metadata=metadata,
                    created_at=now,
                    updated_at=now,
                    livemode=livemode,
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(sellers.c.id)
            ).one_or_none()
            if inserted is not None:
                return self.get_seller(conn, seller_id)
            existing = self._seller_row(conn, seller_id)  # a concurrent create won
            assert existing is not None
        same = (
            existing.name == name
            and existing.currency == currency
            and existing.hold_period_seconds == hold_seconds
            and existing.reserve_percent_bp == reserve_bp
            and existing.reserve_period_seconds == reserve_seconds
            and existing.metadata == metadata
            and existing.livemode == livemode
            and existing.test_clock_id == test_clock_id
        )
        if not same:
            raise errors.SellerExists(
                f"seller {seller_id!r} exists with different attributes", seller_id=seller_id
            )
        return _seller(existing)

    def list_sellers(
        self,
        conn: Connection,
        *,
        livemode: bool | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Seller]:
        """Sellers by id; with ``livemode``, those of that mode only (``ix_sellers_livemode``)."""
        query = _seller_query()
        if livemode is not None:
            query = query.where(sellers.c.livemode == livemode)
        return page(conn, query, sellers.c.id, after, limit, _seller)

    def update_seller(
        self,
        conn: Connection,
        seller_id: str,
        *,
        name: str | None = None,
        hold_period: timedelta | None = None,
        rolling_reserve: RollingReserve | Unchanged | None = UNCHANGED,
        metadata: dict[str, Any] | None = None,
        instant_daily_limit: int | Unchanged | None = UNCHANGED,
    ) -> Seller:
        """Change a seller's terms. Hold period and reserve apply to earnings booked from now
        on; earnings already booked keep theirs. ``rolling_reserve=None`` removes the reserve;
        ``instant_daily_limit=None`` gives the seller the platform's limit again."""
        values: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                raise ValidationFailed("name must not be empty", field="name")
            values["name"] = name
        if hold_period is not None:
            values["hold_period_seconds"] = _check_period(
                hold_period, "hold_period", allow_zero=True
            )
        if not isinstance(rolling_reserve, Unchanged):
            bp, seconds = _check_reserve(rolling_reserve)
            values["reserve_percent_bp"] = bp
            values["reserve_period_seconds"] = seconds
        if metadata is not None:
            values["metadata"] = metadata
        if not isinstance(instant_daily_limit, Unchanged):
            limit = instant_daily_limit
            whole = isinstance(limit, int) and not isinstance(limit, bool)
            if limit is not None and not (whole and 0 <= limit <= MAX_AMOUNT):
                raise ValidationFailed(
                    f"instant_daily_limit must be an integer from 0 to {MAX_AMOUNT} (minor units)",
                    field="instant_daily_limit",
                )
            values["instant_daily_limit"] = limit
        values["updated_at"] = utc_now()
        updated = conn.execute(
            sellers.update()
            .where(sellers.c.id == seller_id)
            .values(**values)
            .returning(sellers.c.id)
        ).one_or_none()
        if updated is None:
            raise errors.seller_not_found(seller_id)
        return self.get_seller(conn, seller_id)

    def seller_balances(self, conn: Connection, seller_id: str) -> SellerBalances:
        """The seller's pending, posted and available balances (the ledger account's running
        totals) and what is on hold, in reserve, in dispute and in transit (the seller's running
        totals): one statement, O(1) whatever the seller's history."""
        row = conn.execute(_BALANCES, {"seller": seller_id}).one_or_none()
        if row is None:
            raise errors.seller_not_found(seller_id)
        return SellerBalances(
            seller_id=seller_id,
            currency=row.currency,
            currency_exponent=row.currency_exponent,
            pending=(row.pending_credits + row.posted_credits)
            - (row.pending_debits + row.posted_debits),
            posted=row.posted_credits - row.posted_debits,
            available=row.posted_credits - (row.pending_debits + row.posted_debits),
            on_hold=row.on_hold,
            in_reserve=row.in_reserve,
            in_dispute=row.in_dispute,
            in_transit=row.in_transit,
            instant_daily_limit=row.instant_daily_limit,
            instant_used_today=row.instant_used_today,
            ledger_account_id=row.ledger_account_id,
            lock_version=row.lock_version,
            totals=RunningTotals(
                pending_debits=row.pending_debits,
                pending_credits=row.pending_credits,
                posted_debits=row.posted_debits,
                posted_credits=row.posted_credits,
            ),
        )


_SELLER_CLOCK = text(
    """
SELECT s.test_clock_id, c.frozen_time
  FROM sellers s LEFT JOIN test_clocks c ON c.id = s.test_clock_id
 WHERE s.id = :seller
"""
)

_LOCK_SELLER = text("SELECT 1 FROM seller_balances WHERE seller_id = :seller FOR NO KEY UPDATE")

# Seller accounts are credit-normal (what the platform owes); the views follow DESIGN.md.
_BALANCES = text(
    """
SELECT s.currency, l.currency_exponent, s.ledger_account_id, a.pending_debits, a.pending_credits,
       a.posted_debits, a.posted_credits, a.lock_version, b.on_hold, b.in_reserve, b.in_dispute,
       b.in_transit, s.instant_daily_limit, coalesce(d.amount, 0) AS instant_used_today
  FROM sellers s
  JOIN ledger_accounts a ON a.id = s.ledger_account_id
  JOIN ledgers l ON l.id = a.ledger_id
  JOIN seller_balances b ON b.seller_id = s.id
  -- What today's (UTC) instant payouts count towards the limit (marketplace.instant).
  LEFT JOIN instant_payout_days d
    ON d.seller_id = s.id AND d.day = (clock_timestamp() AT TIME ZONE 'UTC')::date
 WHERE s.id = :seller
"""
)


def check_test_clock(conn: Connection, clock_id: str | None, *, livemode: bool) -> None:
    """A new seller's or wallet's test clock exists (``test_clock_not_found`` otherwise). Test
    clocks are test-mode objects: to a live seller or wallet, none exists."""
    if clock_id is None:
        return
    if livemode:
        raise errors.clock_not_found(clock_id)
    found = conn.execute(
        select(test_clocks.c.id).where(test_clocks.c.id == clock_id)
    ).scalar_one_or_none()
    if found is None:
        raise errors.clock_not_found(clock_id)


def _check_period(value: timedelta, field: str, *, allow_zero: bool) -> int:
    if not isinstance(value, timedelta):
        raise ValidationFailed(f"{field} must be a duration", field=field)
    seconds = value.total_seconds()
    low = timedelta(0) if allow_zero else timedelta(seconds=1)
    if not low <= value <= MAX_PERIOD or seconds != int(seconds):
        raise ValidationFailed(
            f"{field} must be whole seconds between {low} and {MAX_PERIOD.days} days",
            field=field,
        )
    return int(seconds)


def _check_reserve(reserve: RollingReserve | None) -> tuple[int, int | None]:
    if reserve is None:
        return 0, None
    bp = reserve.percent_bp
    if isinstance(bp, bool) or not isinstance(bp, int) or not 1 <= bp <= 10_000:
        raise ValidationFailed(
            "rolling_reserve percent must be between 0.01% and 100% (1-10000 basis points)",
            field="rolling_reserve.percent",
        )
    return bp, _check_period(reserve.period, "rolling_reserve.period", allow_zero=False)


def _seller_query() -> Select[Any]:
    return (
        select(sellers, ledgers.c.id.label("ledger_id"), ledgers.c.currency_exponent)
        .join(
            platform_ledgers,
            (platform_ledgers.c.currency == sellers.c.currency)
            & (platform_ledgers.c.livemode == sellers.c.livemode),
        )
        .join(ledgers, ledgers.c.id == platform_ledgers.c.ledger_id)
    )


def _seller(row: Row[Any]) -> Seller:
    reserve = (
        RollingReserve(row.reserve_percent_bp, timedelta(seconds=row.reserve_period_seconds))
        if row.reserve_period_seconds is not None
        else None
    )
    return from_row(
        Seller,
        row,
        hold_period=timedelta(seconds=row.hold_period_seconds),
        rolling_reserve=reserve,
    )
