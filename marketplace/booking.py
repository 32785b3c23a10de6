"""Booking earnings: one order's or a thousand at once, as database writes in the caller's
transaction. Nothing here waits for Temporal (DESIGN.md: PostgreSQL keeps the money and what is
on hold; Temporal keeps the time).

``book_earnings`` reads what it needs in one statement (each seller's terms and any earning of
the same seller and order), decides every item in Python, and writes set-based: one statement
for the earnings, one for the events, one for the hold clocks, and last one for the ledger
transactions and entries. With ``at_commit`` those statements go to PostgreSQL with the COMMIT as
one message (``ledger_core.deferred``), so the hot rows they lock (the platform's clearing and
fees accounts, which every order touches) are held only while the server works, and only for the
last statement and the COMMIT.

Idempotent by (seller, order): an item booked before answers with the earning as it is now
(``created`` False), or ``earning_conflict`` if its amount or fee differ. Two requests racing on
the same new item: the second one's commit fails on the earnings key (a unique violation), and
re-running it answers as a replay. The ledger transaction's key is ``earning:<seller>/<order>``
(a seller id has no ``/``, so the key names one pair).

The hold clock (``marketplace.holds``): each booking compares its hold's end with what the
seller's hold workflow waits for, in the same statements, and notifies ``seller_holds`` only if
the workflow must look earlier; the worker's dispatcher turns that into a signal.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from ledger_core import (
    Direction,
    LedgerError,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
    ValidationFailed,
)
from ledger_core.deferred import Statement, run
from ledger_core.ids import uuid7
from marketplace import errors
from marketplace.checks import check_amount, check_aware, check_order_id, utc_now
from marketplace.errors import (
    BatchRejected,
)
from marketplace.events import EventType, NewEvent, earning_object, record_events
from marketplace.holds import clock_statement
from marketplace.types import Earning, EarningStatus, PlatformAccount

if TYPE_CHECKING:
    from marketplace.earnings import Earnings

MAX_BATCH = 1000


def earning_external_id(seller_id: str, order_id: str) -> str:
    return f"earning:{seller_id}/{order_id}"


@dataclass(frozen=True, slots=True)
class EarningRequest:
    seller_id: str
    order_id: str
    amount: int
    """The order's gross amount, minor units."""
    fee: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    livemode: bool | None = None
    """The caller's mode: a seller of the other mode is not found (None: any mode)."""


@dataclass(frozen=True, slots=True)
class BookingOutcome:
    """One item's answer: the earning (``created`` now or booked before), or its error."""

    earning: Earning | None
    created: bool = False
    error: LedgerError | None = None


_READ = text(
    """
SELECT r.i, s.id AS seller_id, s.currency, s.ledger_account_id, s.hold_period_seconds,
       s.reserve_percent_bp, s.reserve_period_seconds, s.livemode, e.order_id AS e_order_id,
       c.frozen_time AS clock_time
  FROM jsonb_to_recordset(CAST(:items AS jsonb)) AS r(i int, seller_id text, order_id text)
  LEFT JOIN sellers s ON s.id = r.seller_id
  -- A seller on a test clock books at the clock's time (MarketCore.seller_now, set-based).
  LEFT JOIN test_clocks c ON c.id = s.test_clock_id
  LEFT JOIN earnings e ON e.seller_id = r.seller_id AND e.order_id = r.order_id
 ORDER BY r.i
"""
)

# The earnings rows, new or fail: a concurrent booking of the same pair fails this commit
# (marketplace_insert_earnings, in the 0006 migration).
_INSERT = "SELECT marketplace_insert_earnings(%s::jsonb)"


class Booking:
    """Books earnings for ``Earnings`` (its ledger service and platform ledgers)."""

    def __init__(self, market: Earnings) -> None:
        self.market = market
        self._lock = threading.Lock()

    def book(
        self,
        conn: Connection,
        requests: Sequence[EarningRequest],
        *,
        atomic: bool = False,
        at_commit: bool = False,
        now: datetime | None = None,
    ) -> list[BookingOutcome]:
        """Book ``requests`` (at most ``MAX_BATCH``); one outcome per request, in order.

        ``atomic``: any item that cannot be booked raises ``BatchRejected`` and books none.
        ``at_commit``: the writes go with the commit (``ledger_core.deferred``); otherwise they
        run now, so that the caller reads them in the same transaction. ``now`` (default the
        clock) is when the holds start; a seller on a test clock's, the clock's time."""
        if not 1 <= len(requests) <= MAX_BATCH:
            raise ValidationFailed(f"a batch books 1 to {MAX_BATCH} earnings", field="earnings")
        now = now or utc_now()
        check_aware(now, "now")
        outcomes: list[BookingOutcome | None] = [None] * len(requests)
        for i, request in enumerate(requests):
            try:
                _check(request)
            except LedgerError as exc:
                outcomes[i] = BookingOutcome(None, error=exc)
        pairs = [
            {"i": i, "seller_id": r.seller_id, "order_id": r.order_id}
            for i, r in enumerate(requests)
            if outcomes[i] is None
        ]
        rows = conn.execute(_READ, {"items": json.dumps(pairs)}).all() if pairs else []
        existing = [
            (row.i, (requests[row.i].seller_id, requests[row.i].order_id))
            for row in rows
            if row.e_order_id is not None
        ]
        booked = self.market.get_earnings(conn, [key for _, key in existing]) if existing else {}
        seen: dict[tuple[str, str], int] = {}
        new: list[tuple[int, Earning, NewLedgerTransaction]] = []
        repeats: list[tuple[int, int]] = []  # (item, the earlier item of the same pair)
        for row in rows:
            request = requests[row.i]
            key = (request.seller_id, request.order_id)
            if row.seller_id is None or request.livemode not in (None, row.livemode):
                outcomes[row.i] = BookingOutcome(
                    None,
                    error=errors.SellerNotFound(
                        f"seller {request.seller_id!r} not found", resource="seller"
                    ),
                )
            elif key in booked:
                outcomes[row.i] = _replay(booked[key], request)
            elif key in seen:
                repeats.append((row.i, seen[key]))
            else:
                seen[key] = row.i
                at = row.clock_time or now
                new.append((row.i, *self._new_earning(conn, row, request, at)))
        ids = [uuid7() for _ in new]
        earnings = [
            dataclasses.replace(earning, ledger_transaction_id=txn_id)
            for (_, earning, _), txn_id in zip(new, ids, strict=True)
        ]
        for (i, _, _), earning in zip(new, earnings, strict=True):
            outcomes[i] = BookingOutcome(earning, created=True)
        for i, first in repeats:
            # The same pair earlier in this batch: the same terms are a replay of it.
            earlier = outcomes[first]
            assert earlier is not None and earlier.earning is not None
            outcomes[i] = _replay(earlier.earning, requests[i])
        final = [o for o in outcomes if o is not None]
        assert len(final) == len(requests)
        if atomic and any(o.error is not None for o in final):
            raise BatchRejected(final)
        if new:
            self._write(conn, [txn for _, _, txn in new], ids, earnings, at_commit=at_commit)
        return final

    def _new_earning(
        self, conn: Connection, row: Any, request: EarningRequest, now: datetime
    ) -> tuple[Earning, NewLedgerTransaction]:
        platform = self.market.platform_ledger(conn, row.currency, livemode=row.livemode)
        net = request.amount - request.fee
        entries = [
            NewEntry(platform.account(PlatformAccount.CLEARING), Direction.DEBIT, request.amount)
        ]
        if net > 0:
            entries.append(NewEntry(row.ledger_account_id, Direction.CREDIT, net))
        if request.fee > 0:
            entries.append(
                NewEntry(
                    platform.account(PlatformAccount.FEES_REVENUE), Direction.CREDIT, request.fee
                )
            )
        seller, order = request.seller_id, request.order_id
        txn = NewLedgerTransaction(
            ledger_id=platform.ledger_id,
            entries=tuple(entries),
            status=TransactionStatus.PENDING,
            external_id=earning_external_id(seller, order),
            # On a test clock the earning counts from the clock's time (statements, as-of reads).
            effective_at=now if row.clock_time is not None else None,
            description=f"Earning of seller {seller} for order {order}",
            metadata={"kind": "earning", "seller_id": seller, "order_id": order},
        )
        reserve_bp = row.reserve_percent_bp
        earning = Earning(
            order_id=order,
            seller_id=seller,
            currency=row.currency,
            amount=request.amount,
            fee=request.fee,
            net=net,
            status=EarningStatus.ON_HOLD,
            hold_until=now + timedelta(seconds=row.hold_period_seconds),
            posted_at=None,
            cancelled_at=None,
            ledger_transaction_id=uuid.UUID(int=0),  # set once the ledger has its id
            reserve_percent_bp=reserve_bp,
            reserve_period=(
                timedelta(seconds=row.reserve_period_seconds)
                if row.reserve_period_seconds is not None
                else None
            ),
            # Rounded down: the seller never has more held back than the percent says.
            reserve_amount=net * reserve_bp // 10_000,
            reserve_transaction_id=None,
            reserve_release_at=None,
            reserve_released_at=None,
            metadata=dict(request.metadata),
            created_at=now,
            updated_at=now,
        )
        return earning, txn

    def _write(
        self,
        conn: Connection,
        txns: list[NewLedgerTransaction],
        ids: list[uuid.UUID],
        earnings: list[Earning],
        *,
        at_commit: bool,
    ) -> None:
        # The earnings first: their trigger locks the sellers' running totals (in seller order),
        # which every writer of a seller's money takes before the ledger's accounts
        # (MarketCore.lock_seller). Then the events and the clocks (the sellers' own rows), and
        # the ledger last: the platform's clearing and fees accounts, which every order touches,
        # are locked only for that statement and the COMMIT.
        rows = [
            {
                "order_id": e.order_id,
                "seller_id": e.seller_id,
                "currency": e.currency,
                "amount": e.amount,
                "fee": e.fee,
                "net": e.net,
                "ledger_transaction_id": e.ledger_transaction_id,
                "hold_until": e.hold_until,
                "reserve_percent_bp": e.reserve_percent_bp,
                "reserve_period_seconds": (
                    int(e.reserve_period.total_seconds()) if e.reserve_period else None
                ),
                "reserve_amount": e.reserve_amount,
                "metadata": e.metadata,
                "created_at": e.created_at,
            }
            for e in earnings
        ]
        run(
            conn,
            Statement(_INSERT, (json.dumps(rows, default=str, separators=(",", ":")),)),
            at_commit=at_commit,
        )
        record_events(
            conn,
            [
                NewEvent(e.seller_id, EventType.EARNING_CREATED, {"object": earning_object(e)})
                for e in earnings
            ],
            at_commit=at_commit,
        )
        run(conn, clock_statement(_earliest(earnings)), at_commit=at_commit)
        self.market.ledger.create_transactions(conn, txns, ids=ids, at_commit=at_commit)


def _earliest(earnings: list[Earning]) -> dict[str, datetime]:
    due: dict[str, datetime] = {}
    for e in earnings:
        if e.seller_id not in due or e.hold_until < due[e.seller_id]:
            due[e.seller_id] = e.hold_until
    return due


def _replay(earning: Earning | None, request: EarningRequest) -> BookingOutcome:
    assert earning is not None
    if (earning.amount, earning.fee) != (request.amount, request.fee):
        return BookingOutcome(
            None,
            error=errors.EarningConflict(
                f"order {request.order_id!r} of seller {request.seller_id!r} was booked before "
                f"with other terms (amount {earning.amount}, fee {earning.fee})",
                order_id=request.order_id,
                seller_id=request.seller_id,
            ),
        )
    return BookingOutcome(earning, created=False)


def _check(request: EarningRequest) -> None:
    check_order_id(request.order_id)
    check_amount(request.amount, "amount")
    check_amount(request.fee, "fee", allow_zero=True)
    if request.fee > request.amount:
        raise ValidationFailed("fee must not exceed amount", field="fee")
    if not isinstance(request.seller_id, str) or not request.seller_id:
        raise ValidationFailed("seller_id must not be empty", field="seller_id")
