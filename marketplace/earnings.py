"""The earning's life cycle after booking: read, list, post (the operator's early release),
hold and release its rolling reserve, cancel during the hold, extend the hold. Booking itself is
set-based (``marketplace.booking``); the hold workflow's settlement of due holds and the holds list
are ``marketplace.holds``.

Ledger transactions, per DESIGN.md's "The seller's money, step by step":

* earning (pending): debit clearing ``amount``; credit seller ``amount - fee``; credit
  fees_revenue ``fee``. Posted when the hold ends; archived when cancelled during the hold.
* rolling reserve (pending, written with the posting): debit seller, credit rolling_reserve;
  archived when the reserve period ends (posted stays, available comes back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, select, tuple_
from sqlalchemy.engine import Row

from ledger_core import (
    LedgerService,
    ValidationFailed,
)
from marketplace import errors
from marketplace.booking import Booking, BookingOutcome, EarningRequest
from marketplace.checks import check_aware, check_limit, utc_now
from marketplace.events import EventType, earning_object, record_event
from marketplace.holds import Holds, reserve_transaction
from marketplace.rows import from_row, page_of
from marketplace.sellers import MarketCore
from marketplace.tables import earnings
from marketplace.types import Earning, EarningStatus, Hold, Page, PlatformAccount


class Earnings(MarketCore):
    """Earnings of sellers, from booking to posting or cancelling."""

    def __init__(self, ledger: LedgerService | None = None) -> None:
        super().__init__(ledger)
        self.booking = Booking(self)
        self.holds = Holds(self)

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
        row = self.earning_row(conn, seller_id, order_id)
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
        check_limit(limit)
        params: dict[str, Any] = {"seller": seller_id, "limit": limit + 1, "after": after}
        if status is not None:
            params["status"] = str(EarningStatus(status))
        rows = conn.execute(_EARNINGS_PAGES[status is not None, after is not None], params).all()
        page = page_of(rows, limit, _earning, "order_id")
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
        check_aware(at, "at")
        row = self.locked_earning(conn, seller_id, order_id)
        at = self.seller_clock_time(conn, seller_id) or at  # a test clock's seller: its time
        posting = row.status == EarningStatus.ON_HOLD
        if require_on_hold and not posting:
            raise _hold_ended(order_id, row.status)
        if posting and row.reserve_amount > 0 and row.reserve_transaction_id is None:
            # Two ledger writes follow (the posting, then the reserve): lock every account they
            # touch first, in id order, as one write would. Otherwise the rolling reserve account
            # (older than any seller's) is locked after the seller, and a concurrent release of
            # another reserve of this seller (rolling reserve, then seller) deadlocks with it.
            seller = self.get_seller(conn, seller_id)
            platform = self.platform_ledger(conn, seller.currency, livemode=seller.livemode)
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
            now = self.seller_now(conn, seller_id)
            _set(
                conn,
                seller_id,
                order_id,
                status=EarningStatus.POSTED,
                posted_at=now,
                updated_at=now,
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
        check_aware(at, "at")
        row = self.locked_earning(conn, seller_id, order_id)
        if row.reserve_transaction_id is not None:
            return _earning(row)
        if row.status != EarningStatus.POSTED or row.reserve_amount == 0:
            raise errors.InvalidEarningState(
                f"earning of order {order_id!r} has no reserve to hold (status {row.status}, "
                f"reserve {row.reserve_amount})",
                status=row.status,
            )
        account_id, _ = self.seller_account(conn, seller_id)
        platform = self.seller_platform(conn, seller_id)
        clock_time = self.seller_clock_time(conn, seller_id)
        txn = self.ledger.create_transaction(
            conn,
            reserve_transaction(
                platform,
                account_id,
                seller_id,
                order_id,
                row.reserve_amount,
                effective_at=clock_time,
            ),
        )
        now = clock_time or utc_now()
        release_at = (at or now) + timedelta(seconds=row.reserve_period_seconds)
        _set(
            conn,
            seller_id,
            order_id,
            reserve_transaction_id=txn.id,
            reserve_release_at=release_at,
            updated_at=now,
        )
        return self.get_earning(conn, seller_id, order_id)

    def release_reserve(self, conn: Connection, seller_id: str, order_id: str) -> Earning:
        """The reserve period ended: archive the reserve's pending debit (available again).
        Idempotent."""
        row = self.locked_earning(conn, seller_id, order_id)
        if row.reserve_transaction_id is None:
            raise errors.InvalidEarningState(
                f"earning of order {order_id!r} has no reserve held", status=row.status
            )
        if row.reserve_released_at is None:
            self.ledger.archive_transaction(conn, row.reserve_transaction_id)
            now = self.seller_now(conn, seller_id)
            _set(conn, seller_id, order_id, reserve_released_at=now, updated_at=now)
            self.note_available_balance(conn, seller_id)
        return self.get_earning(conn, seller_id, order_id)

    def cancel_earning(
        self, conn: Connection, seller_id: str, order_id: str, *, require_on_hold: bool = False
    ) -> Earning:
        """Refund during the hold: archive the pending earning (it counts nowhere). Idempotent
        (unless ``require_on_hold``); a posted earning raises ``InvalidEarningState`` (it needs a
        refund by reversal)."""
        row = self.locked_earning(conn, seller_id, order_id)
        if require_on_hold and row.status != EarningStatus.ON_HOLD:
            raise _hold_ended(order_id, row.status)
        if row.status == EarningStatus.ON_HOLD:
            self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            now = self.seller_now(conn, seller_id)
            _set(
                conn,
                seller_id,
                order_id,
                status=EarningStatus.CANCELLED,
                cancelled_at=now,
                updated_at=now,
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
        check_aware(hold_until, "hold_until")
        row = self.locked_earning(conn, seller_id, order_id)
        if row.status != EarningStatus.ON_HOLD:
            raise _hold_ended(order_id, row.status)
        if hold_until < row.hold_until or (require_later and hold_until == row.hold_until):
            raise ValidationFailed(
                "the new hold end must be later than the current one "
                f"({row.hold_until.isoformat()})",
                field="hold_until",
            )
        if hold_until != row.hold_until:
            _set(conn, seller_id, order_id, hold_until=hold_until, updated_at=utc_now())
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
            raise errors.earning_not_found(order_id)
        if len(found) > 1:
            raise ValidationFailed(
                f"order {order_id!r} pays several sellers; name the seller", field="seller_id"
            )
        return str(found[0])

    def locked_earning(self, conn: Connection, seller_id: str, order_id: str) -> Row[Any]:
        """The earning's row, locked, and then the seller (``lock_seller``)."""
        row = self.earning_row(conn, seller_id, order_id, for_update=True)
        if row is None:
            raise errors.EarningNotFound(
                f"earning of order {order_id!r} of seller {seller_id!r} not found"
            )
        self.lock_seller(conn, seller_id)
        return row

    @staticmethod
    def earning_row(
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


def _hold_ended(order_id: str, status: str) -> errors.InvalidEarningState:
    return errors.InvalidEarningState(
        f"the hold of order {order_id!r} has already ended (the earning is {status})",
        status=status,
    )


def _key(seller_id: str, order_id: str) -> ColumnElement[bool]:
    return and_(earnings.c.seller_id == seller_id, earnings.c.order_id == order_id)


def _set(conn: Connection, seller_id: str, order_id: str, **values: Any) -> None:
    """Write the earning's new ``values`` (a status as its text)."""
    if "status" in values:
        values["status"] = str(values["status"])
    conn.execute(earnings.update().where(_key(seller_id, order_id)).values(**values))


def _earnings_page(by_status: bool, after: bool) -> Select[Any]:
    query = select(earnings).where(earnings.c.seller_id == bindparam("seller"))
    if by_status:
        query = query.where(earnings.c.status == bindparam("status"))
    if after:
        query = query.where(earnings.c.order_id > bindparam("after"))
    return query.order_by(earnings.c.order_id).limit(bindparam("limit"))


# A seller's earnings page, a hot read: its four statements built once.
_EARNINGS_PAGES = {(s, a): _earnings_page(s, a) for s in (False, True) for a in (False, True)}


def _earning(row: Row[Any]) -> Earning:
    return from_row(
        Earning,
        row,
        status=EarningStatus(row.status),
        reserve_period=(
            timedelta(seconds=row.reserve_period_seconds)
            if row.reserve_period_seconds is not None
            else None
        ),
    )
