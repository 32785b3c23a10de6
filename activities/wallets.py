"""The activity of the wallet expiry workflow: expire every lot of the wallet that is due, in
batches of one database transaction each (each idempotent: an expired lot is no longer due, and
its ledger transaction is keyed by lot and expiry count), and record when to look next."""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio import activity

from activities.database import DatabaseActivities, in_transaction
from contracts.wallets import EXPIRE_WALLET_LOTS, ExpireWalletLotsInput, ExpireWalletLotsResult

# One activity works through due batches for at most this long, then the workflow runs it again.
EXPIRE_BUDGET = timedelta(seconds=5)


class WalletActivities(DatabaseActivities):
    """Built once per worker with its engine; the methods are the activities (sync: the worker
    runs them in its thread pool)."""

    @activity.defn(name=EXPIRE_WALLET_LOTS)
    def expire_wallet_lots(self, input: ExpireWalletLotsInput) -> ExpireWalletLotsResult:
        """A turn of the wallet's expiry workflow at ``input.at`` (its clock; a wallet on a test
        clock: the test clock's time)."""
        deadline = time.monotonic() + EXPIRE_BUDGET.total_seconds()
        lots = amount = 0
        while True:
            turn = in_transaction(
                self.engine,
                lambda conn: self.marketplace.expire_due(conn, input.wallet_id, at=input.at),
            )
            lots += turn.expired_lots
            amount += turn.expired_amount
            if not turn.more:
                # A wallet on a test clock waits for the clock's advance to wake it, not for a
                # timer in wall time (its timer is in the clock's time).
                timer_at = turn.timer_at if turn.test_clock_id is None else None
                return ExpireWalletLotsResult(lots, amount, False, timer_at)
            if time.monotonic() >= deadline:
                return ExpireWalletLotsResult(lots, amount, True, None)
            activity.heartbeat(lots)
