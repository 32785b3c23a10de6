"""Test clocks: a time of their own for the (test-mode) sellers and wallets created on them.

A clock has a ``frozen_time``, which is its objects' now: a booking's hold starts then, a turn
of the hold or expiry workflow of a clocked seller or wallet settles what is due by then
(``MarketCore.seller_now``, ``WalletCore.wallet_now`` resolve an object's now in one place).
Nothing of a clock moves by wall time; its workflows wait for a wake instead of a timer.

An advance (``request_advance``) records its target (``advance_to``) and the clock turns
``advancing``; the advance workflow (``test-clock/<id>/<n>``) then calls ``advance_step`` until
the clock is ``ready`` again. Each step either finds something due at or before ``frozen_time``
not done yet (``waiting``: the workflow wakes the objects' workflows, ``due_objects``, and
polls), or, all of it done, answers ``settled`` when only asked to look (the workflow then runs
the payout schedules' firings at that time) or moves ``frozen_time`` to the earliest moment
something of the clock's objects falls due (a hold's end, a reserve's release, a lot's expiry, a
dispute's deadline, a payout schedule's firing, which the caller computes), never past the
target (``moved``), or, with nothing left before the target, sets ``frozen_time`` to the target
(``ready``). So everything
happens in time order: a 7-day hold ends before the weekly payout that pays it out.

Every method takes a SQLAlchemy ``Connection`` inside a database transaction the caller owns.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import ValidationFailed
from marketplace import errors
from marketplace.checks import check_aware, check_id, utc_now
from marketplace.rows import from_row, page, row_by_id
from marketplace.tables import sellers, test_clocks, wallets
from marketplace.types import Page, TestClock, TestClockStatus
from marketplace.wallets import new_id

# At most this many objects are woken per step (a test clock serves an integration test).
WAKE_LIMIT = 1000
# How far one advance may go: a year of daily payouts is 366 steps; further, advance again.
MAX_ADVANCE = timedelta(days=366)


class StepOutcome(enum.StrEnum):
    WAITING = "waiting"  # something due by frozen_time is not done yet
    SETTLED = "settled"  # everything due by frozen_time is done (asked not to move)
    MOVED = "moved"  # frozen_time moved to the next moment something falls due
    READY = "ready"  # the advance is over (frozen_time is the target)


@dataclass(frozen=True, slots=True)
class AdvanceStep:
    outcome: StepOutcome
    frozen_time: datetime
    outstanding: int = 0
    """What is due by ``frozen_time`` and not done yet (``waiting``)."""


@dataclass(frozen=True, slots=True)
class DueObjects:
    """The clock's objects with something due by its ``frozen_time`` (their workflows to wake)."""

    frozen_time: datetime
    seller_ids: list[str]
    wallet_ids: list[str]
    dispute_ids: list[str]


class AdvanceNotRecorded(Exception):
    """The advance's request has not committed yet (the workflow started first): retry."""


class TestClocks:
    """Test clocks: create, read, list, delete, advance step by step. Stateless."""

    __test__ = False  # no test class for pytest

    def create_clock(
        self,
        conn: Connection,
        *,
        clock_id: str | None = None,
        name: str,
        frozen_time: datetime,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[TestClock, bool]:
        """A clock at ``frozen_time``; returns it and whether it was created. The same request
        again returns it; other attributes raise ``TestClockExists``."""
        clock_id = clock_id or new_id("clock")
        check_id(clock_id, "id")
        check_aware(frozen_time, "frozen_time")
        if not name.strip():
            raise ValidationFailed("name must not be empty", field="name")
        metadata = metadata or {}
        now = utc_now()
        inserted = conn.execute(
            pg_insert(test_clocks)
            .values(
                id=clock_id,
                name=name,
                frozen_time=frozen_time,
                status=str(TestClockStatus.READY),
                advance_count=0,
                metadata=metadata,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(*test_clocks.c)
        ).one_or_none()
        if inserted is not None:
            return _clock(inserted), True
        existing = row_by_id(conn, test_clocks, clock_id)
        assert existing is not None
        if (existing.name, existing.metadata) != (name, metadata) or (
            existing.advance_count == 0 and existing.frozen_time != frozen_time
        ):
            raise errors.TestClockExists(
                f"test clock {clock_id!r} exists with different attributes", clock_id=clock_id
            )
        return _clock(existing), False

    def get_clock(self, conn: Connection, clock_id: str) -> TestClock:
        row = row_by_id(conn, test_clocks, clock_id)
        if row is None:
            raise errors.clock_not_found(clock_id)
        return _clock(row)

    def list_clocks(
        self, conn: Connection, *, after: str | None = None, limit: int = 25
    ) -> Page[TestClock]:
        return page(conn, select(test_clocks), test_clocks.c.id, after, limit, _clock)

    def delete_clock(self, conn: Connection, clock_id: str) -> TestClock:
        """Delete a clock with no sellers or wallets (``test_clock_in_use`` otherwise; Stripe
        deletes the objects, but here they carry money in the ledger) that is not advancing."""
        row = row_by_id(conn, test_clocks, clock_id, for_update=True)
        if row is None:
            raise errors.clock_not_found(clock_id)
        if row.status == TestClockStatus.ADVANCING:
            raise _advancing(row)
        used = conn.execute(
            select(
                or_(
                    exists().where(sellers.c.test_clock_id == clock_id),
                    exists().where(wallets.c.test_clock_id == clock_id),
                )
            )
        ).scalar_one()
        if used:
            raise errors.TestClockInUse(
                f"test clock {clock_id!r} still has sellers or wallets", clock_id=clock_id
            )
        conn.execute(test_clocks.delete().where(test_clocks.c.id == clock_id))
        return _clock(row)

    def request_advance(
        self, conn: Connection, clock_id: str, frozen_time: datetime
    ) -> tuple[TestClock, bool]:
        """Record an advance to ``frozen_time`` (later than the clock's); returns the clock,
        ``advancing``, and whether this request started the advance (False: the same advance
        was asked before and is under way, so its workflow is the one to make sure of). Another
        target while advancing raises ``TestClockAdvancing``; one not later than the clock's
        time, ``TestClockNotLater``."""
        check_aware(frozen_time, "frozen_time")
        row = row_by_id(conn, test_clocks, clock_id, for_update=True)
        if row is None:
            raise errors.clock_not_found(clock_id)
        if row.status == TestClockStatus.ADVANCING:
            if row.advance_to == frozen_time:
                return _clock(row), False
            raise _advancing(row)
        if frozen_time <= row.frozen_time:
            raise errors.TestClockNotLater(
                f"frozen_time must be later than the clock's ({row.frozen_time.isoformat()})",
                field="frozen_time",
            )
        if frozen_time - row.frozen_time > MAX_ADVANCE:
            raise ValidationFailed(
                f"an advance goes at most {MAX_ADVANCE.days} days ahead; advance again for more",
                field="frozen_time",
            )
        updated = conn.execute(
            test_clocks.update()
            .where(test_clocks.c.id == clock_id)
            .values(
                status=str(TestClockStatus.ADVANCING),
                advance_to=frozen_time,
                advance_count=test_clocks.c.advance_count + 1,
                updated_at=utc_now(),
            )
            .returning(*test_clocks.c)
        ).one()
        return _clock(updated), True

    def advance_step(
        self,
        conn: Connection,
        clock_id: str,
        advance: int,
        *,
        move: bool = True,
        scheduled: datetime | None = None,
    ) -> AdvanceStep:
        """One step of the clock's advance number ``advance`` (module docstring); ``move``
        False: only look (``settled`` instead of moving on). ``scheduled``: a moment after
        ``frozen_time`` the caller knows of (a payout schedule's firing: it lives in Temporal,
        not in the database), a moment like the others."""
        row = row_by_id(conn, test_clocks, clock_id, for_update=True)
        if row is None:
            raise errors.clock_not_found(clock_id)
        if row.advance_count < advance:
            raise AdvanceNotRecorded(f"advance {advance} of {clock_id} is not recorded yet")
        if row.advance_count > advance or row.status == TestClockStatus.READY:
            return AdvanceStep(StepOutcome.READY, row.frozen_time)  # over (a retried step)
        params = {"clock": clock_id, "at": row.frozen_time}
        outstanding = int(conn.execute(_OUTSTANDING, params).scalar_one())
        if outstanding:
            return AdvanceStep(StepOutcome.WAITING, row.frozen_time, outstanding)
        if not move:
            return AdvanceStep(StepOutcome.SETTLED, row.frozen_time)
        moments = [conn.execute(_NEXT_DUE, params).scalar_one_or_none(), scheduled]
        due = [m for m in moments if m is not None and row.frozen_time < m <= row.advance_to]
        values: dict[str, Any] = {"updated_at": utc_now()}
        if due:
            values["frozen_time"] = min(due)
            outcome = StepOutcome.MOVED
        else:
            values.update(
                frozen_time=row.advance_to, status=str(TestClockStatus.READY), advance_to=None
            )
            outcome = StepOutcome.READY
        conn.execute(test_clocks.update().where(test_clocks.c.id == clock_id).values(**values))
        return AdvanceStep(outcome, values["frozen_time"])

    def clock_time(self, conn: Connection, clock_id: str) -> datetime:
        return self.get_clock(conn, clock_id).frozen_time

    def due_objects(self, conn: Connection, clock_id: str) -> DueObjects:
        """The clock's sellers and wallets with something due by its time and not done, and its
        open disputes whose deadline passed: the workflows an advance wakes (at most
        ``WAKE_LIMIT`` of each)."""
        row = row_by_id(conn, test_clocks, clock_id)
        if row is None:
            raise errors.clock_not_found(clock_id)
        params = {"clock": clock_id, "at": row.frozen_time, "limit": WAKE_LIMIT}
        return DueObjects(
            frozen_time=row.frozen_time,
            seller_ids=list(conn.execute(_DUE_SELLERS, params).scalars()),
            wallet_ids=list(conn.execute(_DUE_WALLETS, params).scalars()),
            dispute_ids=list(conn.execute(_DUE_DISPUTES, params).scalars()),
        )

    def clock_sellers(self, conn: Connection, clock_id: str) -> list[str]:
        """The ids of the clock's sellers (their payout schedules follow the clock)."""
        return list(
            conn.execute(
                select(sellers.c.id)
                .where(sellers.c.test_clock_id == clock_id)
                .order_by(sellers.c.id)
                .limit(WAKE_LIMIT)
            ).scalars()
        )


def _advancing(row: Row[Any]) -> errors.TestClockAdvancing:
    return errors.TestClockAdvancing(
        f"test clock {row.id!r} is advancing to {row.advance_to.isoformat()}; wait until it is "
        "ready",
        clock_id=row.id,
    )


def _clock(row: Row[Any]) -> TestClock:
    return from_row(TestClock, row, status=TestClockStatus(row.status))


# -------------------------------------------------------------------- SQL
# What falls due for a clock's objects, each kind by its own index-backed condition (the same as
# the workflows' turns: marketplace.holds, marketplace.wallet_expiries, marketplace.disputes),
# composed from these constants only.

_DUE_HOLDS = """
SELECT e.seller_id, e.hold_until AS due FROM earnings e JOIN sellers s ON s.id = e.seller_id
 WHERE s.test_clock_id = :clock AND e.status = 'on_hold'
UNION ALL
SELECT e.seller_id, e.reserve_release_at FROM earnings e JOIN sellers s ON s.id = e.seller_id
 WHERE s.test_clock_id = :clock AND e.reserve_transaction_id IS NOT NULL
   AND e.reserve_released_at IS NULL
"""
_DUE_LOTS = """
SELECT l.wallet_id, l.expires_at AS due FROM wallet_lots l JOIN wallets w ON w.id = l.wallet_id
 WHERE w.test_clock_id = :clock AND l.status = 'settled' AND l.remaining > 0
   AND l.expires_at IS NOT NULL
"""

_DUE_DISPUTES_SQL = """
SELECT d.id, d.deadline AS due FROM disputes d JOIN sellers s ON s.id = d.seller_id
 WHERE s.test_clock_id = :clock AND d.status = 'open'
"""

_OUTSTANDING = text(
    f"""
SELECT (SELECT count(*) FROM ({_DUE_HOLDS}) h WHERE due <= :at)
     + (SELECT count(*) FROM ({_DUE_LOTS}) l WHERE due <= :at)
     + (SELECT count(*) FROM ({_DUE_DISPUTES_SQL}) d WHERE due <= :at)
"""  # noqa: S608 (constants)
)
_NEXT_DUE = text(
    f"""
SELECT least((SELECT min(due) FROM ({_DUE_HOLDS}) h WHERE due > :at),
             (SELECT min(due) FROM ({_DUE_LOTS}) l WHERE due > :at),
             (SELECT min(due) FROM ({_DUE_DISPUTES_SQL}) d WHERE due > :at))
"""  # noqa: S608 (constants)
)
_DUE_SELLERS = text(
    f"SELECT DISTINCT seller_id FROM ({_DUE_HOLDS}) h WHERE due <= :at ORDER BY 1 LIMIT :limit"  # noqa: S608
)
_DUE_DISPUTES = text(
    f"SELECT id FROM ({_DUE_DISPUTES_SQL}) d WHERE due <= :at ORDER BY 1 LIMIT :limit"  # noqa: S608
)
_DUE_WALLETS = text(
    f"SELECT DISTINCT wallet_id FROM ({_DUE_LOTS}) l WHERE due <= :at ORDER BY 1 LIMIT :limit"  # noqa: S608
)
