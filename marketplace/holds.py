"""Holds in the database: what is on hold, when it ends, and the clock each seller's hold
workflow keeps (DESIGN.md: PostgreSQL keeps the money and what is on hold; Temporal keeps time).

An earning is on hold until ``hold_until``; once posted, a rolling reserve of it is held until
``reserve_release_at``. The seller's hold workflow holds no list of them: each turn it runs
``Holds.settle_due``, which posts every earning whose hold ended and releases every reserve whose
period ended (set-based, a batch per database transaction), and records on the seller's clock
(``seller_hold_clocks``) when it will look next: the earliest end still ahead, but not before the
release window has passed since this turn (``not_before``), so a seller's releases come at most
once per window.

Bookings (``marketplace.booking``) read that clock in their own commit (``clock_statement``): a
hold that ends before the workflow would look asks for a wake (``wake_requested_at``) and
notifies ``seller_holds``; later bookings see the request and stay quiet. The worker's dispatcher
signals the workflow on the notification; its sweep (``sellers_to_wake``) wakes every seller
whose request went unanswered or whose timer passed unobserved, so a lost notification (the
dispatcher was down, Temporal was) delays a release, never strands it.

Lock order, as every writer of a seller's money: earnings rows, the seller's running totals
(``MarketCore.lock_seller``), then the ledger's accounts, its event stream and its clock in
whatever order (the seller's lock is held by one writer at a time).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import Row

from ledger_core import Direction, NewEntry, NewLedgerTransaction, TransactionStatus
from ledger_core.deferred import Statement, run
from ledger_core.ids import uuid7
from marketplace.checks import check_aware, check_limit, utc_now
from marketplace.events import (
    EventType,
    NewEvent,
    earning_object,
    record_available_change,
    record_events,
)
from marketplace.rows import from_row
from marketplace.types import Earning, EarningStatus, Hold, Page, PlatformAccount, PlatformLedger

if TYPE_CHECKING:
    from marketplace.earnings import Earnings

NOTIFY_CHANNEL = "seller_holds"
SETTLE_BATCH = 500


def reserve_external_id(seller_id: str, order_id: str) -> str:
    return f"reserve:{seller_id}/{order_id}"


def reserve_transaction(
    platform: PlatformLedger,
    account_id: uuid.UUID,
    seller_id: str,
    order_id: str,
    amount: int,
    *,
    effective_at: datetime | None = None,
) -> NewLedgerTransaction:
    """An earning's rolling reserve: a pending debit of the seller's account (``account_id``)
    to the platform's rolling reserve, until the reserve period ends. ``effective_at``: a test
    clock's time (None: when it is written)."""
    return NewLedgerTransaction(
        ledger_id=platform.ledger_id,
        entries=(
            NewEntry(account_id, Direction.DEBIT, amount),
            NewEntry(platform.account(PlatformAccount.ROLLING_RESERVE), Direction.CREDIT, amount),
        ),
        status=TransactionStatus.PENDING,
        effective_at=effective_at,
        external_id=reserve_external_id(seller_id, order_id),
        description=f"Rolling reserve of seller {seller_id} for order {order_id}",
        metadata={"kind": "reserve", "seller_id": seller_id, "order_id": order_id},
    )


# A booking's hold ends at ``due`` (the earliest per seller of one commit): it asks for a wake
# if the workflow would look later than max(due, not_before), and then notifies
# (marketplace_request_wakes, in the 0006 migration).
_CLOCK = "SELECT marketplace_request_wakes(%s::jsonb)"


def clock_statement(due: dict[str, datetime]) -> Statement:
    """The hold clocks' part of a booking's commit: ``due`` is each seller's earliest new hold
    end."""
    rows = [{"seller_id": s, "due": d.isoformat()} for s, d in sorted(due.items())]
    return Statement(_CLOCK, (json.dumps(rows),))


# The end of a turn: lock (or create) the clock, then, in a statement of its own (so that it sees
# every booking that committed while it waited for the lock), the next due time and the timer.
_TURN_LOCK = """
INSERT INTO seller_hold_clocks (seller_id, updated_at) VALUES (%s, now())
ON CONFLICT (seller_id) DO UPDATE SET updated_at = EXCLUDED.updated_at
"""
_TURN = """
WITH next AS (
    SELECT least(
        (SELECT min(hold_until) FROM earnings WHERE seller_id = %s AND status = 'on_hold'),
        (SELECT min(reserve_release_at) FROM earnings
          WHERE seller_id = %s AND reserve_transaction_id IS NOT NULL
            AND reserve_released_at IS NULL)) AS due
), timer AS (
    SELECT CASE WHEN due IS NULL THEN NULL ELSE greatest(due, %s::timestamptz) END AS at
      FROM next
)
UPDATE seller_hold_clocks c
   SET timer_at = timer.at, not_before = %s, updated_at = now(),
       wake_requested_at = CASE WHEN c.wake_requested_at <= %s
                                  OR c.wake_requested_at >= coalesce(timer.at, 'infinity')
                                THEN NULL ELSE c.wake_requested_at END,
       wake_requested_on = CASE WHEN c.wake_requested_at <= %s
                                  OR c.wake_requested_at >= coalesce(timer.at, 'infinity')
                                THEN NULL ELSE c.wake_requested_on END
  FROM timer
 WHERE c.seller_id = %s
"""

_LOCK_SELLER = (
    "SELECT count(*) FROM (SELECT 1 FROM seller_balances WHERE seller_id = %s FOR NO KEY UPDATE) s"
)

_DUE_HOLDS = text(
    """
SELECT * FROM earnings
 WHERE seller_id = :seller AND status = 'on_hold' AND hold_until <= :at
 ORDER BY hold_until, order_id
 LIMIT :limit
   FOR UPDATE SKIP LOCKED
"""
)
_DUE_RESERVES = text(
    """
SELECT * FROM earnings
 WHERE seller_id = :seller AND reserve_transaction_id IS NOT NULL
   AND reserve_released_at IS NULL AND reserve_release_at <= :at
 ORDER BY reserve_release_at, order_id
 LIMIT :limit
   FOR UPDATE SKIP LOCKED
"""
)
_UPDATE_EARNINGS = """
UPDATE earnings e
   SET status = x.status,
       posted_at = coalesce(x.posted_at, e.posted_at),
       reserve_transaction_id = coalesce(x.reserve_transaction_id, e.reserve_transaction_id),
       reserve_release_at = coalesce(x.reserve_release_at, e.reserve_release_at),
       reserve_released_at = coalesce(x.reserve_released_at, e.reserve_released_at),
       updated_at = x.updated_at
  FROM jsonb_to_recordset(%s::jsonb) AS x(
       order_id text, status text, posted_at timestamptz, reserve_transaction_id uuid,
       reserve_release_at timestamptz, reserve_released_at timestamptz, updated_at timestamptz)
 WHERE e.seller_id = %s AND e.order_id = x.order_id
"""

_CLOCK_READ = text(
    """
SELECT c.timer_at, c.not_before, b.on_hold, b.on_hold_count, b.in_reserve, b.in_reserve_count,
       s.test_clock_id
  FROM seller_balances b LEFT JOIN seller_hold_clocks c ON c.seller_id = b.seller_id
  JOIN sellers s ON s.id = b.seller_id
 WHERE b.seller_id = :seller
"""
)

# Oldest first; ``:prefix`` narrows the sweep to some sellers (tests sharing a database).
_TO_WAKE = text(
    """
SELECT seller_id FROM (
    SELECT seller_id, wake_requested_on AS since FROM seller_hold_clocks
     WHERE wake_requested_on < now() - :grace
    UNION ALL
    -- A timer in a test clock's time is no wall time: the clock's advance wakes its sellers.
    SELECT seller_id, timer_at FROM seller_hold_clocks c
     WHERE timer_at < now() - :grace
       AND NOT EXISTS (SELECT 1 FROM sellers s
                        WHERE s.id = c.seller_id AND s.test_clock_id IS NOT NULL)
) late
WHERE starts_with(seller_id, :prefix)
GROUP BY seller_id
ORDER BY min(since)
LIMIT :limit
"""
)

_HOLDS = text(
    """
SELECT * FROM (
    SELECT 'earning' AS kind, order_id, hold_until AS ends_at,
           earning_on_hold(status, net, refunded_amount, amount) AS amount_held,
           hold_until, reserve_release_at, amount, fee, net, ledger_transaction_id
      FROM earnings WHERE seller_id = :seller AND status = 'on_hold'
    UNION ALL
    SELECT 'reserve', order_id, reserve_release_at, reserve_amount, hold_until,
           reserve_release_at, amount, fee, net, ledger_transaction_id
      FROM earnings
     WHERE seller_id = :seller AND reserve_transaction_id IS NOT NULL
       AND reserve_released_at IS NULL
) h
WHERE (CAST(:after_at AS timestamptz) IS NULL
       OR (ends_at, order_id, kind) > (CAST(:after_at AS timestamptz), :after_order, :after_kind))
ORDER BY ends_at, order_id, kind
LIMIT :limit
"""
)


@dataclass(frozen=True, slots=True)
class SettledBatch:
    """One database transaction of a turn: what it posted and released, and whether there is
    more due than one batch took."""

    posted: int
    released: int
    more: bool


@dataclass(frozen=True, slots=True)
class HoldClock:
    """What a seller's hold workflow waits for and what it keeps an eye on (O(1) to read)."""

    seller_id: str
    timer_at: datetime | None
    not_before: datetime | None
    on_hold: int
    on_hold_count: int
    in_reserve: int
    in_reserve_count: int
    test_clock_id: str | None = None
    """The seller's test clock: its timer is in the clock's time, and an advance wakes it."""


class Holds:
    """Settling holds, the hold clocks and the holds list, for ``Earnings``."""

    def __init__(self, market: Earnings) -> None:
        self.market = market
        self.ledger = market.ledger

    def settle_due(
        self,
        conn: Connection,
        seller_id: str,
        *,
        at: datetime,
        window: timedelta,
        limit: int = SETTLE_BATCH,
    ) -> SettledBatch:
        """Post up to ``limit`` earnings whose hold ended by ``at`` (holding back their rolling
        reserves, due ``at`` + the reserve period) and release up to ``limit`` reserves due by
        then, and set the seller's clock: the next turn is at the earliest end still ahead, not
        before ``at + window``. In the caller's database transaction; its writes go with the
        commit (``ledger_core.deferred``). Rows another transaction holds (a refund, an
        operator's release) are left for the next turn."""
        check_aware(at, "at")
        # A seller on a test clock settles what is due by the clock's time, at that time.
        clock_time = self.market.seller_clock_time(conn, seller_id)
        at = clock_time or at
        due = conn.execute(_DUE_HOLDS, {"seller": seller_id, "at": at, "limit": limit}).all()
        reserves = conn.execute(
            _DUE_RESERVES, {"seller": seller_id, "at": at, "limit": limit}
        ).all()
        account_id, currency = self.market.seller_account(conn, seller_id)
        platform = self.market.seller_platform(conn, seller_id)
        now = clock_time or utc_now()
        updates: list[dict[str, Any]] = []
        posted: list[Earning] = []
        reserve_txns: list[NewLedgerTransaction] = []
        reserve_ids = []
        for row in due:
            reserve_id = None
            release_at = None
            if row.reserve_amount > 0 and row.reserve_transaction_id is None:
                reserve_id = uuid7()
                release_at = at + timedelta(seconds=row.reserve_period_seconds)
                reserve_ids.append(reserve_id)
                reserve_txns.append(
                    reserve_transaction(
                        platform,
                        account_id,
                        seller_id,
                        row.order_id,
                        row.reserve_amount,
                        effective_at=clock_time,
                    )
                )
            updates.append(
                {
                    "order_id": row.order_id,
                    "status": str(EarningStatus.POSTED),
                    "posted_at": now,
                    "reserve_transaction_id": reserve_id,
                    "reserve_release_at": release_at,
                    "reserve_released_at": None,
                    "updated_at": now,
                }
            )
            posted.append(
                self.market.earning_from_row(
                    row,
                    status=EarningStatus.POSTED,
                    posted_at=now,
                    reserve_transaction_id=reserve_id or row.reserve_transaction_id,
                    reserve_release_at=release_at or row.reserve_release_at,
                    updated_at=now,
                )
            )
        for row in reserves:
            updates.append(
                {
                    "order_id": row.order_id,
                    "status": row.status,
                    "posted_at": None,
                    "reserve_transaction_id": None,
                    "reserve_release_at": None,
                    "reserve_released_at": now,
                    "updated_at": now,
                }
            )
        if updates:
            # The seller first, then its accounts (MarketCore.lock_seller).
            run(conn, Statement(_LOCK_SELLER, (seller_id,)), at_commit=True)
            accounts = [
                account_id,
                platform.account(PlatformAccount.CLEARING),
                platform.account(PlatformAccount.FEES_REVENUE),
            ]
            if reserve_txns or reserves:
                accounts.append(platform.account(PlatformAccount.ROLLING_RESERVE))
            # Several statements touch these accounts: lock them all first, in id order.
            self.ledger.defer_lock_accounts(conn, accounts)
            self.ledger.set_status(
                conn,
                [r.ledger_transaction_id for r in due],
                TransactionStatus.POSTED,
                at_commit=True,
            )
            self.ledger.create_transactions(conn, reserve_txns, ids=reserve_ids, at_commit=True)
            self.ledger.set_status(
                conn,
                [r.reserve_transaction_id for r in reserves],
                TransactionStatus.ARCHIVED,
                at_commit=True,
            )
            run(
                conn,
                Statement(
                    _UPDATE_EARNINGS,
                    (json.dumps(updates, default=str, separators=(",", ":")), seller_id),
                ),
                at_commit=True,
            )
            record_events(
                conn,
                [
                    NewEvent(seller_id, EventType.EARNING_POSTED, {"object": earning_object(e)})
                    for e in posted
                ],
                at_commit=True,
            )
            record_available_change(
                conn,
                seller_id=seller_id,
                account_id=account_id,
                currency=currency,
                at_commit=True,
            )
        not_before = at + window
        run(conn, Statement(_TURN_LOCK, (seller_id,)), at_commit=True)
        run(
            conn,
            Statement(_TURN, (seller_id, seller_id, not_before, not_before, at, at, seller_id)),
            at_commit=True,
        )
        return SettledBatch(
            posted=len(due),
            released=len(reserves),
            more=len(due) == limit or len(reserves) == limit,
        )

    def clock(self, conn: Connection, seller_id: str) -> HoldClock:
        """The seller's clock and its holds' totals (after a turn's commit)."""
        row = conn.execute(_CLOCK_READ, {"seller": seller_id}).one_or_none()
        if row is None:
            self.market.get_seller(conn, seller_id)  # seller_not_found
            raise AssertionError("every seller has running totals")  # pragma: no cover
        return HoldClock(
            seller_id=seller_id,
            timer_at=row.timer_at,
            not_before=row.not_before,
            on_hold=int(row.on_hold),
            on_hold_count=int(row.on_hold_count),
            in_reserve=int(row.in_reserve),
            in_reserve_count=int(row.in_reserve_count),
            test_clock_id=row.test_clock_id,
        )

    def sellers_to_wake(
        self, conn: Connection, *, grace: timedelta, limit: int = 1000, prefix: str = ""
    ) -> list[str]:
        """Sellers whose workflow has not answered a booking's wake request, or has not looked
        at its timer, for ``grace``, the longest waiting first: the sweep signals them
        (signal-with-start: a workflow that is gone starts again). ``prefix``: only sellers
        whose id starts with it."""
        params = {"grace": grace, "limit": limit, "prefix": prefix}
        return list(conn.execute(_TO_WAKE, params).scalars())

    def list_holds(
        self,
        conn: Connection,
        seller_id: str,
        *,
        after: tuple[datetime, str, str] | None = None,
        limit: int = 25,
    ) -> Page[Hold]:
        """The seller's holds, the soonest end first: earnings on hold (ending at
        ``hold_until``) and reserves held after posting (ending at ``reserve_release_at``).
        ``after`` is the previous page's last (ends_at, order_id, kind)."""
        check_limit(limit)
        self.market.get_seller(conn, seller_id)
        rows = conn.execute(
            _HOLDS,
            {
                "seller": seller_id,
                "after_at": after[0] if after else None,
                "after_order": after[1] if after else None,
                "after_kind": after[2] if after else None,
                "limit": limit + 1,
            },
        ).all()
        items = [_hold(seller_id, r) for r in rows[:limit]]
        last = items[-1] if len(rows) > limit else None
        return Page(
            items=items,
            next_after=(
                json.dumps([last.ends_at.isoformat(), last.order_id, last.kind])
                if last is not None
                else None
            ),
        )


def _hold(seller_id: str, row: Row[Any]) -> Hold:
    return from_row(Hold, row, seller_id=seller_id, amount_held=int(row.amount_held))
