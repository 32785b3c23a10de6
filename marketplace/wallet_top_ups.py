"""Top-ups: money added to a wallet as a lot, pending until its funding settles (or posted at
once), settled or failed; an operator's change of a lot's expiry; reading and listing a wallet's
lots (top-ups and transfers in).

Ledger transaction (``marketplace.wallets`` describes them all): debit ``wallet_funding``, credit
the wallet, pending; settling posts it, a failed funding archives it, and ``settled`` posts it at
once. A settled lot with an expiry, or a new expiry of one, asks the wallet's expiry workflow to
wake when it comes before the workflow's timer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger_core import (
    Direction,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
    ValidationFailed,
)
from marketplace import errors
from marketplace.checks import check_amount, check_aware, utc_now
from marketplace.events import EventType, iso
from marketplace.rows import page
from marketplace.tables import wallet_lots
from marketplace.types import LotStatus, Page, WalletLot, WalletSystemAccount
from marketplace.wallets import WalletCore, lot_from_row, new_id


class WalletTopUps(WalletCore):
    """Top-ups of wallets: add, settle, fail, change a lot's expiry, read and list lots."""

    def top_up(
        self,
        conn: Connection,
        wallet_id: str,
        *,
        amount: int,
        settled: bool = False,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> WalletLot:
        """Add money to the wallet: a pending credit until the funding settles
        (``settle_top_up`` / ``fail_top_up``), or posted at once (``settled``). ``expires_at``:
        what remains of it then goes to breakage (it must be later than ``now``)."""
        check_amount(amount, "amount")
        wallet = self._lock_wallet(conn, wallet_id)
        now = self.wallet_now(conn, wallet, now)
        if expires_at is not None:
            _check_expiry(expires_at, now)
        ledger_id, accounts = self.wallet_system_accounts(
            conn, wallet.currency, livemode=wallet.livemode
        )
        lot_id = new_id("wtu")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
                # On a test clock it counts from the clock's time.
                effective_at=now if wallet.test_clock_id is not None else None,
                entries=(
                    NewEntry(accounts[WalletSystemAccount.FUNDING], Direction.DEBIT, amount),
                    NewEntry(wallet.ledger_account_id, Direction.CREDIT, amount),
                ),
                status=TransactionStatus.POSTED if settled else TransactionStatus.PENDING,
                external_id=f"wallet-top-up:{lot_id}",
                description=f"Top-up {lot_id} of wallet {wallet_id}",
                metadata={"kind": "wallet_top_up", "wallet_id": wallet_id, "top_up_id": lot_id},
            ),
        )
        status = LotStatus.SETTLED if settled else LotStatus.PENDING
        row = conn.execute(
            wallet_lots.insert()
            .values(
                id=lot_id,
                wallet_id=wallet_id,
                kind="top_up",
                amount=amount,
                remaining=amount,
                expired_amount=0,
                expiry_count=0,
                status=str(status),
                expires_at=expires_at,
                ledger_transaction_id=txn.id,
                metadata=metadata or {},
                settled_at=now if settled else None,
                created_at=now,
                updated_at=now,
            )
            .returning(*wallet_lots.c)
        ).one()
        lot = lot_from_row(row)
        if settled and expires_at is not None:
            self._request_wake(conn, wallet_id, expires_at)
        kind = EventType.WALLET_TOP_UP_SETTLED if settled else EventType.WALLET_TOP_UP_PENDING
        self._event(conn, wallet_id, kind, lot)
        return lot

    def settle_top_up(self, conn: Connection, wallet_id: str, top_up_id: str) -> WalletLot:
        """The top-up's funding arrived: post it (its money is available). Settling a settled
        top-up returns it as it is; a failed one raises ``TopUpNotPending``."""
        wallet = self._lock_wallet(conn, wallet_id)
        lot = self._top_up(conn, wallet_id, top_up_id)
        if lot.status is LotStatus.SETTLED or lot.status is LotStatus.EXPIRED:
            return lot
        if lot.status is not LotStatus.PENDING:
            raise errors.TopUpNotPending(
                f"top-up {top_up_id!r} is {lot.status}; only a pending top-up settles",
                status=str(lot.status),
            )
        self.ledger.post_transaction(conn, lot.ledger_transaction_id)
        now = self.wallet_now(conn, wallet)
        lot = self._update_lot(conn, top_up_id, status=str(LotStatus.SETTLED), settled_at=now)
        if lot.expires_at is not None:
            self._request_wake(conn, wallet_id, lot.expires_at)
        self._event(conn, wallet_id, EventType.WALLET_TOP_UP_SETTLED, lot)
        return lot

    def fail_top_up(self, conn: Connection, wallet_id: str, top_up_id: str) -> WalletLot:
        """The top-up's funding failed: archive its pending credit. Failing a failed top-up
        returns it as it is; a settled one raises ``TopUpNotPending``."""
        self._lock_wallet(conn, wallet_id)
        lot = self._top_up(conn, wallet_id, top_up_id)
        if lot.status is LotStatus.FAILED:
            return lot
        if lot.status is not LotStatus.PENDING:
            raise errors.TopUpNotPending(
                f"top-up {top_up_id!r} is {lot.status}; only a pending top-up fails",
                status=str(lot.status),
            )
        self.ledger.archive_transaction(conn, lot.ledger_transaction_id)
        lot = self._update_lot(
            conn, top_up_id, status=str(LotStatus.FAILED), remaining=0, failed_at=utc_now()
        )
        self._event(conn, wallet_id, EventType.WALLET_TOP_UP_FAILED, lot)
        return lot

    def set_expiry(
        self,
        conn: Connection,
        wallet_id: str,
        top_up_id: str,
        expires_at: datetime | None,
        *,
        now: datetime | None = None,
    ) -> WalletLot:
        """An operator's change of a lot's expiry: a new ``expires_at`` (later than ``now``:
        extend, or bring forward) or None (it never expires). A failed or expired lot raises
        ``InvalidTopUpState``."""
        wallet = self._lock_wallet(conn, wallet_id)
        now = self.wallet_now(conn, wallet, now)
        if expires_at is not None:
            _check_expiry(expires_at, now)
        lot = self._top_up(conn, wallet_id, top_up_id)
        if lot.status not in (LotStatus.PENDING, LotStatus.SETTLED):
            raise errors.InvalidTopUpState(
                f"top-up {top_up_id!r} is {lot.status}; its expiry cannot change",
                status=str(lot.status),
            )
        if lot.expires_at == expires_at:
            return lot
        previous = lot.expires_at
        lot = self._update_lot(conn, top_up_id, expires_at=expires_at)
        if lot.status is LotStatus.SETTLED and expires_at is not None:
            self._request_wake(conn, wallet_id, expires_at)
        data = self._with_balances(conn, wallet_id, lot)
        data["previous_expires_at"] = iso(previous)
        self._events(conn, [(wallet_id, EventType.WALLET_TOP_UP_EXPIRY_CHANGED, data)])
        return lot

    def get_top_up(self, conn: Connection, wallet_id: str, top_up_id: str) -> WalletLot:
        return self._top_up(conn, wallet_id, top_up_id)

    def list_top_ups(
        self, conn: Connection, wallet_id: str, *, after: str | None = None, limit: int = 25
    ) -> Page[WalletLot]:
        """The wallet's lots (top-ups and transfers in) by id, oldest first."""
        self.get_wallet(conn, wallet_id)
        query = select(wallet_lots).where(wallet_lots.c.wallet_id == wallet_id)
        return page(conn, query, wallet_lots.c.id, after, limit, lot_from_row)

    # ------------------------------------------------------------ internals

    def _top_up(self, conn: Connection, wallet_id: str, top_up_id: str) -> WalletLot:
        row = conn.execute(
            select(wallet_lots).where(
                wallet_lots.c.id == top_up_id, wallet_lots.c.wallet_id == wallet_id
            )
        ).one_or_none()
        if row is None:
            self.get_wallet(conn, wallet_id)
            raise errors.top_up_not_found(top_up_id)
        return lot_from_row(row)


def _check_expiry(expires_at: datetime, now: datetime) -> None:
    check_aware(expires_at, "expires_at")
    if expires_at <= now:
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
