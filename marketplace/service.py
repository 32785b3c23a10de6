"""The marketplace on top of the ledger: sellers, earnings with hold periods and rolling reserves,
disputes, and the seller's balances.

Every method takes a SQLAlchemy ``Connection`` inside a database transaction the caller owns (an
activity, an API request, a test) and never commits. Every write is idempotent and keyed: an
earning by its seller and order (ledger transaction ``earning:<seller>/<order>``, its reserve
``reserve:<seller>/<order>``; earnings booked before version 0006 keep ``earning:<order>``), a
chargeback by its id (``dispute:<dispute id>``), and a state change asked twice is a no-op, so a
retried activity never moves money twice. Booking (``marketplace.booking``) and the release of
due holds (``marketplace.holds``) are set-based and can send their writes with the commit.

Ledger transactions, per DESIGN.md's "The seller's money, step by step":

* earning (pending): debit clearing ``amount``; credit seller ``amount - fee``; credit
  fees_revenue ``fee``. Posted when the hold ends; archived when cancelled during the hold.
* rolling reserve (pending, written with the posting): debit seller, credit rolling_reserve;
  archived when the reserve period ends (posted stays, available comes back).
* dispute (pending): debit seller, credit disputes; archived if won, posted if lost.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import (
    Direction,
    IdempotencyConflict,
    LedgerService,
    NewEntry,
    NewLedgerTransaction,
    NormalBalance,
    RunningTotals,
    TransactionStatus,
    ValidationFailed,
)
from ledger_core.currencies import resolve_exponent
from ledger_core.schema import ledger_accounts, ledgers
from marketplace import errors
from marketplace.booking import Booking, BookingOutcome, EarningRequest
from marketplace.events import (
    EventType,
    dispute_object,
    earning_object,
    record_available_change,
    record_event,
)
from marketplace.holds import Holds, reserve_external_id
from marketplace.tables import disputes, earnings, platform_ledgers, sellers
from marketplace.types import (
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    Earning,
    EarningStatus,
    Hold,
    Page,
    PlatformAccount,
    PlatformLedger,
    RollingReserve,
    Seller,
    SellerBalances,
)

MAX_AMOUNT = 2**63 - 1
MAX_PAGE = 1000
MAX_PERIOD = timedelta(days=366)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class Unchanged(enum.Enum):
    """Marks an ``update_seller`` argument that is left as it is (``None`` means "remove")."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


def dispute_external_id(dispute_id: str) -> str:
    return f"dispute:{dispute_id}"


def seller_external_id(seller_id: str) -> str:
    return f"seller:{seller_id}"


class Marketplace:
    """The marketplace's operations. Stateless apart from the ``LedgerService`` it writes
    through; one instance per process."""

    def __init__(self, ledger: LedgerService | None = None) -> None:
        self.ledger = ledger or LedgerService()
        # What never changes once created (a platform ledger's accounts; a seller's ledger
        # account and currency): cached per process, so hot paths skip the lookups.
        self._platforms: dict[str, PlatformLedger] = {}
        self._seller_accounts: dict[str, tuple[uuid.UUID, str]] = {}
        self._cache_lock = threading.Lock()
        self.booking = Booking(self)
        self.holds = Holds(self)

    # ------------------------------------------------------------ platform ledgers

    def platform_ledger(self, conn: Connection, currency: str) -> PlatformLedger:
        """The platform's ledger for ``currency`` with its system accounts, created on first use.

        Race-safe: creation is serialised by a transaction-scoped advisory lock per currency,
        and the system accounts are created idempotently by external_id.
        """
        cached = self._platforms.get(currency)
        if cached is not None:
            return cached
        resolve_exponent(currency, None)  # validates the code
        ledger_id = self._platform_ledger_id(conn, currency)
        if ledger_id is None:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"platform_ledger:{currency}"},
            )
            ledger_id = self._platform_ledger_id(conn, currency)
            if ledger_id is None:
                ledger = self.ledger.create_ledger(
                    conn,
                    name=f"Platform {currency}",
                    currency=currency,
                    description=f"The marketplace's money in {currency}",
                    metadata={"kind": "platform"},
                )
                conn.execute(
                    platform_ledgers.insert().values(
                        currency=currency, ledger_id=ledger.id, created_at=_now()
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
        platform = PlatformLedger(currency=currency, ledger_id=ledger_id, accounts=accounts)
        if len(accounts) == len(PlatformAccount) and by_external.keys() >= {
            r.external_id for r in PlatformAccount
        }:
            # Only what was committed before this transaction is cached (a rollback could undo
            # what it created).
            with self._cache_lock:
                self._platforms[currency] = platform
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
        cached = self._seller_accounts.get(seller_id)
        if cached is not None:
            return cached
        row = conn.execute(
            select(sellers.c.ledger_account_id, sellers.c.currency).where(sellers.c.id == seller_id)
        ).one_or_none()
        if row is None:
            raise errors.SellerNotFound(f"seller {seller_id!r} not found", resource="seller")
        with self._cache_lock:
            if len(self._seller_accounts) > 500_000:
                self._seller_accounts.clear()
            self._seller_accounts[seller_id] = (row.ledger_account_id, row.currency)
        return row.ledger_account_id, row.currency

    @staticmethod
    def _platform_ledger_id(conn: Connection, currency: str) -> uuid.UUID | None:
        value: uuid.UUID | None = conn.execute(
            select(platform_ledgers.c.ledger_id).where(platform_ledgers.c.currency == currency)
        ).scalar_one_or_none()
        return value

    # ------------------------------------------------------------ sellers

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
    ) -> Seller:
        """Create a seller and its credit-normal ledger account (external_id ``seller:<id>``).

        The same request again returns the seller; other attributes raise ``SellerExists``.
        """
        _check_id(seller_id, "id")
        if not name.strip():
            raise ValidationFailed("name must not be empty", field="name")
        hold_seconds = _check_period(hold_period, "hold_period", allow_zero=True)
        reserve_bp, reserve_seconds = _check_reserve(rolling_reserve)
        metadata = metadata or {}

        existing = self._seller_row(conn, seller_id)
        if existing is None:
            platform = self.platform_ledger(conn, currency)
            account = self.ledger.create_account(
                conn,
                ledger_id=platform.ledger_id,
                name=f"Seller {seller_id}",
                normal_balance=NormalBalance.CREDIT,
                external_id=seller_external_id(seller_id),
                metadata={"kind": "seller", "seller_id": seller_id},
            )
            now = _now()
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
                    metadata=metadata,
                    created_at=now,
                    updated_at=now,
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
        )
        if not same:
            raise errors.SellerExists(
                f"seller {seller_id!r} exists with different attributes", seller_id=seller_id
            )
        return _seller(existing)

    def get_seller(self, conn: Connection, seller_id: str) -> Seller:
        row = self._seller_row(conn, seller_id)
        if row is None:
            raise errors.SellerNotFound(f"seller {seller_id!r} not found", resource="seller")
        return _seller(row)

    def list_sellers(
        self, conn: Connection, *, after: str | None = None, limit: int = 25
    ) -> Page[Seller]:
        return _page(conn, _seller_query(), sellers.c.id, after, limit, _seller)

    def update_seller(
        self,
        conn: Connection,
        seller_id: str,
        *,
        name: str | None = None,
        hold_period: timedelta | None = None,
        rolling_reserve: RollingReserve | Unchanged | None = UNCHANGED,
        metadata: dict[str, Any] | None = None,
    ) -> Seller:
        """Change a seller's terms. Hold period and reserve apply to earnings booked from now
        on; earnings already booked keep theirs. ``rolling_reserve=None`` removes the reserve."""
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
        values["updated_at"] = _now()
        updated = conn.execute(
            sellers.update()
            .where(sellers.c.id == seller_id)
            .values(**values)
            .returning(sellers.c.id)
        ).one_or_none()
        if updated is None:
            raise errors.SellerNotFound(f"seller {seller_id!r} not found", resource="seller")
        return self.get_seller(conn, seller_id)

    @staticmethod
    def _seller_row(conn: Connection, seller_id: str) -> Row[Any] | None:
        return conn.execute(_seller_query().where(sellers.c.id == seller_id)).one_or_none()

    # ------------------------------------------------------------ earnings

    def book_earnings(
        self,
        conn: Connection,
        requests: Sequence[EarningRequest],
        *,
        atomic: bool = False,
        at_commit: bool = False,
        now: datetime | None = None,
    ) -> list[BookingOutcome]:
        """Book orders' earnings set-based (``marketplace.booking``): pending ledger
        transactions, each on hold until now + its seller's hold period."""
        return self.booking.book(conn, requests, atomic=atomic, at_commit=at_commit, now=now)

    def book_earning(
        self,
        conn: Connection,
        *,
        seller_id: str,
        order_id: str,
        amount: int,
        fee: int = 0,
        metadata: dict[str, Any] | None = None,
        booked_at: datetime | None = None,
        at_commit: bool = False,
    ) -> Earning:
        """Book one order's earning as a pending ledger transaction on hold until
        ``booked_at + the seller's hold period`` (booked_at defaults to now).

        Idempotent by seller and order: the same amount and fee return the existing earning
        (whatever its status now); other terms raise ``EarningConflict``."""
        [outcome] = self.book_earnings(
            conn,
            [EarningRequest(seller_id, order_id, amount, fee, metadata or {})],
            at_commit=at_commit,
            now=booked_at,
        )
        if outcome.error is not None:
            raise outcome.error
        assert outcome.earning is not None
        return outcome.earning

    def get_earning(self, conn: Connection, seller_id: str, order_id: str) -> Earning:
        row = self._earning_row(conn, seller_id, order_id)
        if row is None:
            raise errors.EarningNotFound(
                f"earning of order {order_id!r} of seller {seller_id!r} not found"
            )
        return _earning(row)

    def get_earnings(
        self, conn: Connection, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Earning]:
        """The earnings of these (seller, order) pairs that exist, in one statement."""
        if not keys:
            return {}
        rows = conn.execute(
            select(earnings).where(
                tuple_(earnings.c.seller_id, earnings.c.order_id).in_(list(keys))
            )
        ).all()
        return {(r.seller_id, r.order_id): _earning(r) for r in rows}

    def list_earnings(
        self,
        conn: Connection,
        seller_id: str,
        *,
        status: EarningStatus | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Earning]:
        """The seller's earnings by order id (raises ``SellerNotFound`` for an unknown seller),
        in one statement."""
        _check_limit(limit)
        params: dict[str, Any] = {"seller": seller_id, "limit": limit + 1, "after": after}
        if status is not None:
            params["status"] = str(EarningStatus(status))
        rows = conn.execute(_EARNINGS_PAGES[status is not None, after is not None], params).all()
        page = _page_of(rows, limit, _earning, "order_id")
        if not page.items:
            self.get_seller(conn, seller_id)  # an empty page of an unknown seller is a 404
        return page

    def post_earning(
        self,
        conn: Connection,
        seller_id: str,
        order_id: str,
        *,
        at: datetime | None = None,
        require_on_hold: bool = False,
    ) -> Earning:
        """End the hold now: post the earning's transaction and, if the earning carries a rolling
        reserve, hold the reserve back in the same database transaction (so the reserved part is
        never available in between). ``at`` (default now) starts the reserve period.

        Posting a posted earning is a no-op (unless ``require_on_hold``: an operator's first
        request for a hold that ended); a cancelled or refunded one raises
        ``InvalidEarningState``. (The hold workflow posts due holds set-based:
        ``marketplace.holds``; this is the operator's early release.)
        """
        _check_aware(at, "at")
        row = self._locked_earning(conn, seller_id, order_id)
        posting = row.status == EarningStatus.ON_HOLD
        if require_on_hold and not posting:
            raise _hold_ended(order_id, row.status)
        if posting and row.reserve_amount > 0 and row.reserve_transaction_id is None:
            # Two ledger writes follow (the posting, then the reserve): lock every account they
            # touch first, in id order, as one write would. Otherwise the rolling reserve account
            # (older than any seller's) is locked after the seller, and a concurrent release of
            # another reserve of this seller (rolling reserve, then seller) deadlocks with it.
            seller = self.get_seller(conn, seller_id)
            platform = self.platform_ledger(conn, seller.currency)
            self.ledger.lock_accounts(
                conn,
                [
                    seller.ledger_account_id,
                    platform.account(PlatformAccount.CLEARING),
                    platform.account(PlatformAccount.FEES_REVENUE),
                    platform.account(PlatformAccount.ROLLING_RESERVE),
                ],
            )
        if posting:
            self.ledger.post_transaction(conn, row.ledger_transaction_id)
            now = _now()
            conn.execute(
                earnings.update()
                .where(_key(seller_id, order_id))
                .values(status=str(EarningStatus.POSTED), posted_at=now, updated_at=now)
            )
        elif row.status != EarningStatus.POSTED:
            raise errors.InvalidEarningState(
                f"earning of order {order_id!r} is {row.status}; only an earning on hold is posted",
                status=row.status,
            )
        reserving = row.reserve_amount > 0 and row.reserve_transaction_id is None
        if reserving:
            earning = self.hold_reserve(conn, seller_id, order_id, at=at)
        else:
            earning = self.get_earning(conn, seller_id, order_id)
        if posting:
            record_event(
                conn,
                earning.seller_id,
                EventType.EARNING_POSTED,
                {"object": earning_object(earning)},
            )
        if posting or reserving:
            self.note_available_balance(conn, earning.seller_id)
        return earning

    def hold_reserve(
        self, conn: Connection, seller_id: str, order_id: str, *, at: datetime | None = None
    ) -> Earning:
        """Hold back the posted earning's rolling reserve (pending debit seller -> rolling
        reserve, ``reserve:<seller>/<order>``) until ``at + the reserve period``. Idempotent;
        ``post_earning`` calls it."""
        _check_aware(at, "at")
        row = self._locked_earning(conn, seller_id, order_id)
        if row.reserve_transaction_id is not None:
            return _earning(row)
        if row.status != EarningStatus.POSTED or row.reserve_amount == 0:
            raise errors.InvalidEarningState(
                f"earning of order {order_id!r} has no reserve to hold (status {row.status}, "
                f"reserve {row.reserve_amount})",
                status=row.status,
            )
        account_id, currency = self.seller_account(conn, seller_id)
        platform = self.platform_ledger(conn, currency)
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=(
                    NewEntry(account_id, Direction.DEBIT, row.reserve_amount),
                    NewEntry(
                        platform.account(PlatformAccount.ROLLING_RESERVE),
                        Direction.CREDIT,
                        row.reserve_amount,
                    ),
                ),
                status=TransactionStatus.PENDING,
                external_id=reserve_external_id(seller_id, order_id),
                description=f"Rolling reserve of seller {seller_id} for order {order_id}",
                metadata={"kind": "reserve", "seller_id": seller_id, "order_id": order_id},
            ),
        )
        release_at = (at or _now()) + timedelta(seconds=row.reserve_period_seconds)
        conn.execute(
            earnings.update()
            .where(_key(seller_id, order_id))
            .values(reserve_transaction_id=txn.id, reserve_release_at=release_at, updated_at=_now())
        )
        return self.get_earning(conn, seller_id, order_id)

    def release_reserve(self, conn: Connection, seller_id: str, order_id: str) -> Earning:
        """The reserve period ended: archive the reserve's pending debit (available again).
        Idempotent."""
        row = self._locked_earning(conn, seller_id, order_id)
        if row.reserve_transaction_id is None:
            raise errors.InvalidEarningState(
                f"earning of order {order_id!r} has no reserve held", status=row.status
            )
        if row.reserve_released_at is None:
            self.ledger.archive_transaction(conn, row.reserve_transaction_id)
            now = _now()
            conn.execute(
                earnings.update()
                .where(_key(seller_id, order_id))
                .values(reserve_released_at=now, updated_at=now)
            )
            self.note_available_balance(conn, seller_id)
        return self.get_earning(conn, seller_id, order_id)

    def cancel_earning(
        self, conn: Connection, seller_id: str, order_id: str, *, require_on_hold: bool = False
    ) -> Earning:
        """Refund during the hold: archive the pending earning (it counts nowhere). Idempotent
        (unless ``require_on_hold``); a posted earning raises ``InvalidEarningState`` (it needs a
        refund by reversal)."""
        row = self._locked_earning(conn, seller_id, order_id)
        if require_on_hold and row.status != EarningStatus.ON_HOLD:
            raise _hold_ended(order_id, row.status)
        if row.status == EarningStatus.ON_HOLD:
            self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            now = _now()
            conn.execute(
                earnings.update()
                .where(_key(seller_id, order_id))
                .values(status=str(EarningStatus.CANCELLED), cancelled_at=now, updated_at=now)
            )
            cancelled = self.get_earning(conn, seller_id, order_id)
            record_event(
                conn,
                seller_id,
                EventType.EARNING_CANCELLED,
                {"object": earning_object(cancelled)},
            )
            return cancelled
        elif row.status != EarningStatus.CANCELLED:
            raise errors.InvalidEarningState(
                f"earning of order {order_id!r} is {row.status}; only an earning on hold is "
                "cancelled",
                status=row.status,
            )
        return self.get_earning(conn, seller_id, order_id)

    def extend_hold(
        self,
        conn: Connection,
        seller_id: str,
        order_id: str,
        hold_until: datetime,
        *,
        require_later: bool = False,
    ) -> Earning:
        """Move an earning's hold end later. The same end again is a no-op (unless
        ``require_later``: an operator's first request); an earlier one is a
        ``ValidationFailed``."""
        _check_aware(hold_until, "hold_until")
        row = self._locked_earning(conn, seller_id, order_id)
        if row.status != EarningStatus.ON_HOLD:
            raise _hold_ended(order_id, row.status)
        if hold_until < row.hold_until or (require_later and hold_until == row.hold_until):
            raise ValidationFailed(
                "the new hold end must be later than the current one "
                f"({row.hold_until.isoformat()})",
                field="hold_until",
            )
        if hold_until != row.hold_until:
            conn.execute(
                earnings.update()
                .where(_key(seller_id, order_id))
                .values(hold_until=hold_until, updated_at=_now())
            )
        return self.get_earning(conn, seller_id, order_id)

    def list_holds(
        self,
        conn: Connection,
        seller_id: str,
        *,
        after: tuple[datetime, str, str] | None = None,
        limit: int = 25,
    ) -> Page[Hold]:
        """The seller's holds, the soonest end first (``marketplace.holds``)."""
        return self.holds.list_holds(conn, seller_id, after=after, limit=limit)

    def seller_of_order(self, conn: Connection, order_id: str) -> str:
        """The seller of an order's earning, for inputs that name an earning by its order alone
        (activities scheduled by hold workflows of the first shape, when order ids were unique
        across sellers). An order that pays several sellers is ambiguous here."""
        found = (
            conn.execute(
                select(earnings.c.seller_id).where(earnings.c.order_id == order_id).limit(2)
            )
            .scalars()
            .all()
        )
        if not found:
            raise errors.EarningNotFound(f"earning of order {order_id!r} not found")
        if len(found) > 1:
            raise ValidationFailed(
                f"order {order_id!r} pays several sellers; name the seller", field="seller_id"
            )
        return str(found[0])

    def _locked_earning(self, conn: Connection, seller_id: str, order_id: str) -> Row[Any]:
        """The earning's row, locked, and then the seller (``lock_seller``)."""
        row = self._earning_row(conn, seller_id, order_id, for_update=True)
        if row is None:
            raise errors.EarningNotFound(
                f"earning of order {order_id!r} of seller {seller_id!r} not found"
            )
        self.lock_seller(conn, seller_id)
        return row

    @staticmethod
    def _earning_row(
        conn: Connection, seller_id: str, order_id: str, *, for_update: bool = False
    ) -> Row[Any] | None:
        query = select(earnings).where(_key(seller_id, order_id))
        if for_update:
            query = query.with_for_update()
        return conn.execute(query).one_or_none()

    @staticmethod
    def earning_from_row(row: Row[Any], **changes: Any) -> Earning:
        """An earning from its row, with ``changes`` applied (for writers that compute the new
        state before it is written)."""
        return dataclasses.replace(_earning(row), **changes)

    # ------------------------------------------------------------ disputes

    def open_dispute(
        self,
        conn: Connection,
        *,
        dispute_id: str,
        seller_id: str,
        order_id: str,
        amount: int,
        deadline: datetime,
        reason: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Dispute:
        """Open a chargeback: a pending debit seller -> disputes (``dispute:<id>``), so the
        seller's available balance drops and posted does not. Idempotent by dispute id; other
        terms raise ``DisputeConflict``. No balance condition: a chargeback is not optional,
        and available may go negative."""
        _check_id(dispute_id, "id")
        _check_order_id(order_id)
        _check_amount(amount, "amount")
        _check_aware(deadline, "deadline")
        existing = self._dispute_row(conn, dispute_id)
        if existing is not None:
            return _same_dispute(existing, seller_id, order_id, amount)
        seller = self.get_seller(conn, seller_id)
        platform = self.platform_ledger(conn, seller.currency)
        self.lock_seller(conn, seller_id)
        try:
            txn = self.ledger.create_transaction(
                conn,
                NewLedgerTransaction(
                    ledger_id=platform.ledger_id,
                    entries=(
                        NewEntry(seller.ledger_account_id, Direction.DEBIT, amount),
                        NewEntry(
                            platform.account(PlatformAccount.DISPUTES), Direction.CREDIT, amount
                        ),
                    ),
                    status=TransactionStatus.PENDING,
                    external_id=dispute_external_id(dispute_id),
                    description=f"Dispute {dispute_id} of seller {seller_id}, order {order_id}",
                    metadata={
                        "kind": "dispute",
                        "seller_id": seller_id,
                        "order_id": order_id,
                        "dispute_id": dispute_id,
                    },
                ),
            )
        except IdempotencyConflict as exc:
            raise errors.DisputeConflict(
                f"dispute {dispute_id!r} exists with different terms", dispute_id=dispute_id
            ) from exc
        now = _now()
        inserted = conn.execute(
            pg_insert(disputes)
            .values(
                id=dispute_id,
                seller_id=seller_id,
                order_id=order_id,
                currency=seller.currency,
                amount=amount,
                reason=reason,
                status=str(DisputeStatus.OPEN),
                deadline=deadline,
                ledger_transaction_id=txn.id,
                metadata=metadata or {},
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(*disputes.c)
        ).one_or_none()
        if inserted is None:
            concurrent = self._dispute_row(conn, dispute_id)
            assert concurrent is not None
            return _same_dispute(concurrent, seller_id, order_id, amount)
        dispute = _dispute(inserted)
        record_event(conn, seller_id, EventType.DISPUTE_OPENED, {"object": dispute_object(dispute)})
        self.note_available_balance(conn, seller_id)
        return dispute

    def resolve_dispute(
        self, conn: Connection, dispute_id: str, outcome: DisputeOutcome | str
    ) -> Dispute:
        """Won: archive the pending debit (available comes back). Lost: post it. The same
        outcome again is a no-op; the other raises ``DisputeAlreadyResolved``."""
        try:
            outcome = DisputeOutcome(outcome)
        except ValueError:
            raise ValidationFailed("outcome must be won or lost", field="outcome") from None
        row = self._dispute_row(conn, dispute_id, for_update=True)
        if row is None:
            raise errors.DisputeNotFound(f"dispute {dispute_id!r} not found", resource="dispute")
        if row.status == DisputeStatus.OPEN:
            self.lock_seller(conn, row.seller_id)
            if outcome is DisputeOutcome.WON:
                self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            else:
                self.ledger.post_transaction(conn, row.ledger_transaction_id)
            now = _now()
            conn.execute(
                disputes.update()
                .where(disputes.c.id == dispute_id)
                .values(status=str(outcome), resolved_at=now, updated_at=now)
            )
            resolved = self.get_dispute(conn, dispute_id)
            record_event(
                conn,
                row.seller_id,
                EventType.DISPUTE_WON if outcome is DisputeOutcome.WON else EventType.DISPUTE_LOST,
                {"object": dispute_object(resolved)},
            )
            self.note_available_balance(conn, row.seller_id)
            return resolved
        elif row.status != outcome:
            raise errors.DisputeAlreadyResolved(
                f"dispute {dispute_id!r} was already resolved as {row.status}", status=row.status
            )
        return self.get_dispute(conn, dispute_id)

    def get_dispute(self, conn: Connection, dispute_id: str) -> Dispute:
        row = self._dispute_row(conn, dispute_id)
        if row is None:
            raise errors.DisputeNotFound(f"dispute {dispute_id!r} not found", resource="dispute")
        return _dispute(row)

    def list_disputes(
        self,
        conn: Connection,
        *,
        seller_id: str | None = None,
        status: DisputeStatus | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Dispute]:
        query = select(disputes)
        if seller_id is not None:
            query = query.where(disputes.c.seller_id == seller_id)
        if status is not None:
            query = query.where(disputes.c.status == str(DisputeStatus(status)))
        return _page(conn, query, disputes.c.id, after, limit, _dispute)

    @staticmethod
    def _dispute_row(
        conn: Connection, dispute_id: str, *, for_update: bool = False
    ) -> Row[Any] | None:
        query = select(disputes).where(disputes.c.id == dispute_id)
        if for_update:
            query = query.with_for_update()
        return conn.execute(query).one_or_none()

    # ------------------------------------------------------------ balances

    def note_available_balance(self, conn: Connection, seller_id: str) -> None:
        """After a change of the seller's money, in its transaction: record
        ``balance.available_changed`` if the available balance moved since the last one reported
        (marketplace.events)."""
        account_id, currency = self.seller_account(conn, seller_id)
        record_available_change(conn, seller_id=seller_id, account_id=account_id, currency=currency)

    def seller_balances(self, conn: Connection, seller_id: str) -> SellerBalances:
        """The seller's pending, posted and available balances (the ledger account's running
        totals) and what is on hold, in reserve, in dispute and in transit (the seller's running
        totals): one statement, O(1) whatever the seller's history."""
        row = conn.execute(_BALANCES, {"seller": seller_id}).one_or_none()
        if row is None:
            raise errors.SellerNotFound(f"seller {seller_id!r} not found", resource="seller")
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
            ledger_account_id=row.ledger_account_id,
            lock_version=row.lock_version,
            totals=RunningTotals(
                pending_debits=row.pending_debits,
                pending_credits=row.pending_credits,
                posted_debits=row.posted_debits,
                posted_credits=row.posted_credits,
            ),
        )


_LOCK_SELLER = text("SELECT 1 FROM seller_balances WHERE seller_id = :seller FOR NO KEY UPDATE")

# Seller accounts are credit-normal (what the platform owes); the views follow DESIGN.md.
_BALANCES = text(
    """
SELECT s.currency, l.currency_exponent, s.ledger_account_id, a.pending_debits, a.pending_credits,
       a.posted_debits, a.posted_credits, a.lock_version, b.on_hold, b.in_reserve, b.in_dispute,
       b.in_transit
  FROM sellers s
  JOIN ledger_accounts a ON a.id = s.ledger_account_id
  JOIN ledgers l ON l.id = a.ledger_id
  JOIN seller_balances b ON b.seller_id = s.id
 WHERE s.id = :seller
"""
)


# -------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _hold_ended(order_id: str, status: str) -> errors.InvalidEarningState:
    return errors.InvalidEarningState(
        f"the hold of order {order_id!r} has already ended (the earning is {status})",
        status=status,
    )


def _key(seller_id: str, order_id: str) -> ColumnElement[bool]:
    return and_(earnings.c.seller_id == seller_id, earnings.c.order_id == order_id)


def _check_id(value: object, field: str) -> None:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValidationFailed(
            f"{field} must be 1-128 characters of letters, digits and _ . : - "
            "(starting with a letter or digit)",
            field=field,
        )


def _check_order_id(value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 200 or not value.strip():
        raise ValidationFailed("order_id must be 1-200 characters", field="order_id")


def _check_amount(value: object, field: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{field} must be an integer number of minor units", field=field)
    if not (0 if allow_zero else 1) <= value <= MAX_AMOUNT:
        raise ValidationFailed(
            f"{field} must be {'>= 0' if allow_zero else 'positive'} and at most {MAX_AMOUNT}",
            field=field,
        )
    return value


def _check_aware(value: datetime | None, field: str) -> None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailed(f"{field} must include a time zone offset", field=field)


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
        .join(platform_ledgers, platform_ledgers.c.currency == sellers.c.currency)
        .join(ledgers, ledgers.c.id == platform_ledgers.c.ledger_id)
    )


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"per_page must be between 1 and {MAX_PAGE}", field="per_page")


def _page(
    conn: Connection, query: Select[Any], key: Any, after: str | None, limit: int, build: Any
) -> Page[Any]:
    _check_limit(limit)
    if after is not None:
        query = query.where(key > after)
    rows = conn.execute(query.order_by(key).limit(limit + 1)).all()
    return _page_of(rows, limit, build, key.name)


def _page_of(rows: Sequence[Row[Any]], limit: int, build: Any, key: str) -> Page[Any]:
    """A page of ``limit`` from ``rows`` (``limit`` + 1 read: one more means a next page)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=[build(r) for r in rows], next_after=getattr(rows[-1], key) if more else None)


def _earnings_page(by_status: bool, after: bool) -> Select[Any]:
    query = select(earnings).where(earnings.c.seller_id == bindparam("seller"))
    if by_status:
        query = query.where(earnings.c.status == bindparam("status"))
    if after:
        query = query.where(earnings.c.order_id > bindparam("after"))
    return query.order_by(earnings.c.order_id).limit(bindparam("limit"))


# A seller's earnings page, a hot read: its four statements built once.
_EARNINGS_PAGES = {(s, a): _earnings_page(s, a) for s in (False, True) for a in (False, True)}


def _seller(row: Row[Any]) -> Seller:
    reserve = (
        RollingReserve(row.reserve_percent_bp, timedelta(seconds=row.reserve_period_seconds))
        if row.reserve_period_seconds is not None
        else None
    )
    return Seller(
        id=row.id,
        name=row.name,
        currency=row.currency,
        currency_exponent=row.currency_exponent,
        hold_period=timedelta(seconds=row.hold_period_seconds),
        rolling_reserve=reserve,
        ledger_id=row.ledger_id,
        ledger_account_id=row.ledger_account_id,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _earning(row: Row[Any]) -> Earning:
    return Earning(
        order_id=row.order_id,
        seller_id=row.seller_id,
        currency=row.currency,
        amount=row.amount,
        fee=row.fee,
        net=row.net,
        status=EarningStatus(row.status),
        hold_until=row.hold_until,
        posted_at=row.posted_at,
        cancelled_at=row.cancelled_at,
        ledger_transaction_id=row.ledger_transaction_id,
        reserve_percent_bp=row.reserve_percent_bp,
        reserve_period=(
            timedelta(seconds=row.reserve_period_seconds)
            if row.reserve_period_seconds is not None
            else None
        ),
        reserve_amount=row.reserve_amount,
        reserve_transaction_id=row.reserve_transaction_id,
        reserve_release_at=row.reserve_release_at,
        reserve_released_at=row.reserve_released_at,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _dispute(row: Row[Any]) -> Dispute:
    return Dispute(
        id=row.id,
        seller_id=row.seller_id,
        order_id=row.order_id,
        currency=row.currency,
        amount=row.amount,
        reason=row.reason,
        status=DisputeStatus(row.status),
        deadline=row.deadline,
        ledger_transaction_id=row.ledger_transaction_id,
        resolved_at=row.resolved_at,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _same_dispute(row: Row[Any], seller_id: str, order_id: str, amount: int) -> Dispute:
    if (row.seller_id, row.order_id, row.amount) != (seller_id, order_id, amount):
        raise errors.DisputeConflict(
            f"dispute {row.id!r} exists with other terms (seller {row.seller_id}, order "
            f"{row.order_id}, amount {row.amount})",
            dispute_id=row.id,
        )
    return _dispute(row)
