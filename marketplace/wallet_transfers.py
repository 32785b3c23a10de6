"""Transfers between two wallets of one currency: one posted ledger transaction (debit the
sender, whose available must stay >= 0; credit the receiver), so both balances change at once.
Both wallets are locked, in id order. The sender's soonest-expiring money goes first, and the
receiver gets one lot per expiry date of the money moved (transfers keep the expiry).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger_core import (
    CurrencyMismatch,
    Direction,
    NewEntry,
    NewLedgerTransaction,
    ValidationFailed,
)
from marketplace import errors
from marketplace.checks import check_amount
from marketplace.events import EventType
from marketplace.rows import from_row
from marketplace.tables import wallet_lots, wallet_transfers
from marketplace.types import LotStatus, WalletTransfer
from marketplace.wallets import AVAILABLE_STAYS_POSITIVE, WalletCore, check_description, new_id


class WalletTransfers(WalletCore):
    """Transfer money between wallets; read a transfer."""

    def transfer(
        self,
        conn: Connection,
        *,
        from_wallet_id: str,
        to_wallet_id: str,
        amount: int,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> WalletTransfer:
        """Move money between two wallets of one currency in one posted ledger transaction:
        both balances change at once. The sender's soonest-expiring money goes first, and the
        receiver gets it with the same expiry dates. ``CurrencyMismatch`` across currencies,
        ``BalanceConditionFailed`` (``insufficient_balance``) beyond what the sender can
        spend."""
        check_amount(amount, "amount")
        check_description(description)
        if from_wallet_id == to_wallet_id:
            raise ValidationFailed("a transfer needs two different wallets", field="to_wallet_id")
        # Both wallets locked, in id order (no lock cycle between opposite transfers).
        locked = {w: self._lock_wallet(conn, w) for w in sorted((from_wallet_id, to_wallet_id))}
        sender, receiver = locked[from_wallet_id], locked[to_wallet_id]
        if sender.livemode != receiver.livemode:
            # Test money never reaches a live wallet: the other mode's wallet is unknown here.
            raise errors.wallet_not_found(to_wallet_id)
        if sender.currency != receiver.currency:
            raise CurrencyMismatch(
                f"wallet {from_wallet_id!r} is in {sender.currency} and wallet {to_wallet_id!r} "
                f"in {receiver.currency}; transfers are within one currency",
                from_currency=sender.currency,
                to_currency=receiver.currency,
            )
        if sender.test_clock_id != receiver.test_clock_id:
            # Their nows differ: the expiry dates handed on would mean another time.
            raise ValidationFailed(
                "a transfer needs two wallets on the same test clock (or both on none)",
                field="to_wallet_id",
            )
        now = self.wallet_now(conn, sender, now)
        taken = self._take(conn, sender, amount, now)
        ledger_id, _ = self.wallet_system_accounts(conn, sender.currency, livemode=sender.livemode)
        transfer_id = new_id("wtr")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
                # On a test clock it counts from the clock's time.
                effective_at=now if sender.test_clock_id is not None else None,
                entries=(
                    NewEntry(
                        sender.ledger_account_id,
                        Direction.DEBIT,
                        amount,
                        conditions=AVAILABLE_STAYS_POSITIVE,
                    ),
                    NewEntry(receiver.ledger_account_id, Direction.CREDIT, amount),
                ),
                external_id=f"wallet-transfer:{transfer_id}",
                description=description
                or f"Transfer {transfer_id} from wallet {from_wallet_id} to {to_wallet_id}",
                metadata={
                    "kind": "wallet_transfer",
                    "transfer_id": transfer_id,
                    "from_wallet_id": from_wallet_id,
                    "to_wallet_id": to_wallet_id,
                },
            ),
        )
        row = conn.execute(
            wallet_transfers.insert()
            .values(
                id=transfer_id,
                from_wallet_id=from_wallet_id,
                to_wallet_id=to_wallet_id,
                currency=sender.currency,
                amount=amount,
                description=description,
                ledger_transaction_id=txn.id,
                metadata=metadata or {},
                created_at=now,
            )
            .returning(*wallet_transfers.c)
        ).one()
        # The receiver's lots: one per expiry date of the money moved.
        by_expiry: dict[datetime | None, int] = {}
        for _, n, expires_at in taken:
            by_expiry[expires_at] = by_expiry.get(expires_at, 0) + n
        conn.execute(
            wallet_lots.insert(),
            [
                {
                    "id": new_id("wtl"),
                    "wallet_id": to_wallet_id,
                    "kind": "transfer",
                    "amount": n,
                    "remaining": n,
                    "expired_amount": 0,
                    "expiry_count": 0,
                    "status": str(LotStatus.SETTLED),
                    "expires_at": expires_at,
                    "ledger_transaction_id": txn.id,
                    "transfer_id": transfer_id,
                    "metadata": {},
                    "settled_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for expires_at, n in by_expiry.items()
            ],
        )
        soonest = min((e for e in by_expiry if e is not None), default=None)
        if soonest is not None:
            self._request_wake(conn, to_wallet_id, soonest)
        transfer = from_row(WalletTransfer, row)
        self._events(
            conn,
            [
                (
                    from_wallet_id,
                    EventType.WALLET_TRANSFER,
                    {
                        **self._with_balances(conn, from_wallet_id, transfer),
                        "direction": "out",
                    },
                ),
                (
                    to_wallet_id,
                    EventType.WALLET_TRANSFER,
                    {**self._with_balances(conn, to_wallet_id, transfer), "direction": "in"},
                ),
            ],
        )
        return transfer

    def get_transfer(self, conn: Connection, transfer_id: str) -> WalletTransfer:
        row = conn.execute(
            select(wallet_transfers).where(wallet_transfers.c.id == transfer_id)
        ).one_or_none()
        if row is None:
            raise errors.wallet_transfer_not_found(transfer_id)
        return from_row(WalletTransfer, row)
