"""Lock order across the ledger writes of one database transaction.

Posting an earning that carries a rolling reserve writes two ledger transactions in one database
transaction: the posting (clearing, fees revenue, seller) and the reserve (seller, rolling
reserve). Each write locks its accounts in id order, but the rolling reserve account, older than
any seller's, came second; a concurrent release of another reserve of the same seller (rolling
reserve, then seller, in id order) then deadlocked with it. ``bench/month`` found it:
PostgreSQL broke the cycle after its deadlock timeout and the activities retried.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from marketplace import Earning, EarningStatus, Marketplace, RollingReserve


def test_posting_with_a_reserve_does_not_deadlock_with_a_release_of_the_same_seller(
    engine: Engine, uid: str
) -> None:
    seller, held, on_hold = f"s-{uid}", f"o1-{uid}", f"o2-{uid}"
    plain = Marketplace()
    with engine.begin() as conn:
        plain.create_seller(
            conn,
            seller_id=seller,
            name="Shop",
            currency="USD",
            rolling_reserve=RollingReserve(1_000, timedelta(days=1)),
        )
        plain.book_earning(conn, seller_id=seller, order_id=held, amount=10_000, fee=1_000)
        plain.post_earning(conn, seller, held)
        plain.book_earning(conn, seller_id=seller, order_id=on_hold, amount=20_000, fee=2_000)

    release_pid: list[int] = []
    posted = threading.Event()
    pid_known = threading.Event()
    errors: list[BaseException] = []

    class PausingMarketplace(Marketplace):
        """Posts, then waits until the concurrent release waits for a lock, before the reserve."""

        def hold_reserve(
            self, conn: Connection, seller_id: str, order_id: str, *, at: datetime | None = None
        ) -> Earning:
            posted.set()
            assert pid_known.wait(10)
            deadline = time.monotonic() + 10
            with engine.connect() as watcher:
                while time.monotonic() < deadline:
                    waiting = watcher.execute(
                        text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": release_pid[0]},
                    ).scalar_one_or_none()
                    if waiting == "Lock":
                        break
                    watcher.rollback()
                    time.sleep(0.02)
            return super().hold_reserve(conn, seller_id, order_id, at=at)

    def post() -> None:
        try:
            with engine.begin() as conn:
                PausingMarketplace().post_earning(conn, seller, on_hold, at=datetime.now(UTC))
        except BaseException as exc:
            errors.append(exc)
            posted.set()

    def release() -> None:
        try:
            assert posted.wait(10)
            with engine.begin() as conn:
                release_pid.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                pid_known.set()
                plain.release_reserve(conn, seller, held)
        except BaseException as exc:
            errors.append(exc)
            pid_known.set()

    threads = [threading.Thread(target=post), threading.Thread(target=release)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with engine.begin() as conn:
        posted_earning = plain.get_earning(conn, seller, on_hold)
        released = plain.get_earning(conn, seller, held)
        balances = plain.seller_balances(conn, seller)
    assert posted_earning.status == EarningStatus.POSTED and posted_earning.reserve_open
    assert released.reserve_released_at is not None
    # Net 9,000 + 18,000 posted; the second earning's reserve (1,800) still held.
    assert (balances.posted, balances.available, balances.in_reserve) == (27_000, 25_200, 1_800)
