"""Expiries: a turn of a wallet's expiry workflow (``expire_due``: what remains of each lot
due goes to ``wallet_breakage``, one posted transaction per lot, keyed by lot and expiry count),
the wallet's expiry clock, and the wallets whose wake got lost (for the dispatcher's sweep).

The writes that make a lot due sooner ask for a wake themselves, in their own commit
(``WalletCore._request_wake``, a notification on ``marketplace.wallets.NOTIFY_CHANNEL``);
``marketplace.wallets`` describes the whole clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, text

from ledger_core import Direction, NewEntry, NewLedgerTransaction
from marketplace import errors
from marketplace.checks import check_aware
from marketplace.events import EventType
from marketplace.tables import wallet_lots, wallets
from marketplace.types import ExpiryTurn, LotStatus, WalletSystemAccount
from marketplace.wallets import AVAILABLE_STAYS_POSITIVE, WalletCore, balances_object, lot_object

EXPIRE_BATCH = 200


class WalletExpiries(WalletCore):
    """Expire what is due in a wallet; the expiry clock and the wallets to wake."""

    def expire_due(
        self, conn: Connection, wallet_id: str, *, at: datetime, limit: int = EXPIRE_BATCH
    ) -> ExpiryTurn:
        """A turn of the wallet's expiry workflow (``at``: its clock): every settled lot whose
        expiry is at or before ``at`` gives what remains of it to breakage (one posted
        transaction per lot, keyed by lot and expiry count, so a retried turn moves nothing
        twice); then the wallet's clock records the next expiry (the workflow's timer).
        At most ``limit`` lots per call (``more``: run again)."""
        check_aware(at, "at")
        wallet = self._lock_wallet(conn, wallet_id)
        at = self.wallet_now(conn, wallet, at)  # a wallet on a test clock: the clock's time
        due = conn.execute(
            select(wallet_lots)
            .where(
                wallet_lots.c.wallet_id == wallet_id,
                wallet_lots.c.status == str(LotStatus.SETTLED),
                wallet_lots.c.remaining > 0,
                wallet_lots.c.expires_at <= at,
            )
            .order_by(wallet_lots.c.expires_at, wallet_lots.c.id)
            .limit(limit)
        ).all()
        expired_amount = 0
        new_events: list[tuple[str, EventType, dict[str, Any]]] = []
        if due:
            ledger_id, accounts = self.wallet_system_accounts(
                conn, wallet.currency, livemode=wallet.livemode
            )
            for lot in due:
                count = lot.expiry_count + 1
                self.ledger.create_transaction(
                    conn,
                    NewLedgerTransaction(
                        ledger_id=ledger_id,
                        entries=(
                            NewEntry(
                                wallet.ledger_account_id,
                                Direction.DEBIT,
                                lot.remaining,
                                conditions=AVAILABLE_STAYS_POSITIVE,
                            ),
                            NewEntry(
                                accounts[WalletSystemAccount.BREAKAGE],
                                Direction.CREDIT,
                                lot.remaining,
                            ),
                        ),
                        effective_at=lot.expires_at,
                        external_id=f"wallet-expiry:{lot.id}:{count}",
                        description=f"Expiry of {lot.id} in wallet {wallet_id}",
                        metadata={
                            "kind": "wallet_expiry",
                            "wallet_id": wallet_id,
                            "lot_id": lot.id,
                        },
                    ),
                )
                expired = self._update_lot(
                    conn,
                    lot.id,
                    status=str(LotStatus.EXPIRED),
                    remaining=0,
                    expired_amount=lot.expired_amount + lot.remaining,
                    expiry_count=count,
                    expired_at=at,
                )
                expired_amount += lot.remaining
                data = lot_object(expired)
                data["amount_expired"] = lot.remaining
                new_events.append((wallet_id, EventType.WALLET_EXPIRED, data))
            balances = balances_object(self.wallet_balances(conn, wallet_id))
            self._events(conn, [(w, t, {**d, "balances": balances}) for w, t, d in new_events])
        more = len(due) == limit
        timer_at = None
        if not more:
            timer_at = conn.execute(_NEXT_EXPIRY, {"wallet": wallet_id}).scalar_one_or_none()
            # This turn answers every wake asked for: the new timer covers what is ahead.
            conn.execute(
                wallets.update()
                .where(wallets.c.id == wallet_id)
                .values(
                    expiry_timer_at=timer_at,
                    expiry_wake_requested_at=None,
                    expiry_wake_requested_on=None,
                )
            )
        return ExpiryTurn(
            expired_lots=len(due),
            expired_amount=expired_amount,
            more=more,
            timer_at=timer_at,
            test_clock_id=wallet.test_clock_id,
        )

    def wallets_to_wake(
        self, conn: Connection, *, grace: timedelta, prefix: str = "", limit: int = 1000
    ) -> list[str]:
        """Wallets whose wake request went unanswered, or whose timer passed without a turn,
        for longer than ``grace`` (a lost notification: the dispatcher or Temporal was down)."""
        rows = conn.execute(
            _TO_WAKE, {"grace": grace, "prefix": prefix + "%", "limit": limit}
        ).all()
        return [r.id for r in rows]

    def expiry_clock(
        self, conn: Connection, wallet_id: str
    ) -> tuple[datetime | None, datetime | None]:
        """(when the expiry workflow looks next, the earliest wake asked for since)."""
        row = conn.execute(
            select(wallets.c.expiry_timer_at, wallets.c.expiry_wake_requested_at).where(
                wallets.c.id == wallet_id
            )
        ).one_or_none()
        if row is None:
            raise errors.wallet_not_found(wallet_id)
        return row.expiry_timer_at, row.expiry_wake_requested_at


# -------------------------------------------------------------------- SQL

_NEXT_EXPIRY = text(
    """
SELECT min(expires_at) FROM wallet_lots
 WHERE wallet_id = :wallet AND status = 'settled' AND remaining > 0 AND expires_at IS NOT NULL
"""
)

_TO_WAKE = text(
    """
SELECT id FROM wallets
 WHERE (expiry_wake_requested_on < now() - CAST(:grace AS interval)
        -- A timer in a test clock's time is no wall time: the clock's advance wakes it.
        OR (expiry_timer_at < now() - CAST(:grace AS interval) AND test_clock_id IS NULL))
   AND id LIKE :prefix
 ORDER BY id
 LIMIT :limit
"""
)
