"""Spends from a wallet and their refunds.

A spend takes the wallet's settled money whose expiry comes first (``WalletCore._take``, under the
wallet's lock) in one posted ledger transaction: debit the wallet (available must stay >= 0),
credit ``wallet_spends``; ``wallet_spend_lots`` records what it took from each lot. A refund is
debit ``wallet_spends``, credit the wallet (posted), and goes back to the lots the spend took
from, the latest-expiring first, each getting back at most what the spend took from it
(``marketplace.wallets`` says why); a lot whose expiry has passed is due again at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.engine import Row

from ledger_core import Direction, NewEntry, NewLedgerTransaction
from marketplace import errors
from marketplace.checks import check_amount, check_amount_or_none
from marketplace.events import EventType
from marketplace.rows import from_row, page
from marketplace.tables import wallet_refunds, wallet_spend_lots, wallet_spends
from marketplace.types import Page, SpentLot, WalletRefund, WalletSpend, WalletSystemAccount
from marketplace.wallets import AVAILABLE_STAYS_POSITIVE, WalletCore, check_description, new_id


class WalletSpends(WalletCore):
    """Spend from wallets, read and list spends, refund them."""

    def spend(
        self,
        conn: Connection,
        wallet_id: str,
        *,
        amount: int,
        description: str,
        metadata: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> WalletSpend:
        """Spend from the wallet: the lots that expire first are used first. Refused with
        ``BalanceConditionFailed`` (``insufficient_balance``) when the wallet's spendable money
        is less than ``amount``; the ledger's condition (available >= 0) holds it too."""
        check_amount(amount, "amount")
        check_description(description)
        wallet = self._lock_wallet(conn, wallet_id)
        now = self.wallet_now(conn, wallet, now)
        taken = self._take(conn, wallet, amount, now)
        ledger_id, accounts = self.wallet_system_accounts(
            conn, wallet.currency, livemode=wallet.livemode
        )
        spend_id = new_id("wsp")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
                # On a test clock it counts from the clock's time.
                effective_at=now if wallet.test_clock_id is not None else None,
                entries=(
                    NewEntry(
                        wallet.ledger_account_id,
                        Direction.DEBIT,
                        amount,
                        conditions=AVAILABLE_STAYS_POSITIVE,
                    ),
                    NewEntry(accounts[WalletSystemAccount.SPENDS], Direction.CREDIT, amount),
                ),
                external_id=f"wallet-spend:{spend_id}",
                description=description or f"Spend {spend_id} from wallet {wallet_id}",
                metadata={"kind": "wallet_spend", "wallet_id": wallet_id, "spend_id": spend_id},
            ),
        )
        conn.execute(
            wallet_spends.insert().values(
                id=spend_id,
                wallet_id=wallet_id,
                amount=amount,
                refunded_amount=0,
                description=description,
                ledger_transaction_id=txn.id,
                metadata=metadata or {},
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            wallet_spend_lots.insert(),
            [
                {"spend_id": spend_id, "lot_id": lot_id, "amount": n, "refunded": 0}
                for lot_id, n, _ in taken
            ],
        )
        spend = self.get_spend(conn, wallet_id, spend_id)
        self._event(conn, wallet_id, EventType.WALLET_SPENT, spend)
        return spend

    def get_spend(self, conn: Connection, wallet_id: str, spend_id: str) -> WalletSpend:
        row = conn.execute(
            select(wallet_spends).where(
                wallet_spends.c.id == spend_id, wallet_spends.c.wallet_id == wallet_id
            )
        ).one_or_none()
        if row is None:
            self.get_wallet(conn, wallet_id)
            raise errors.spend_not_found(spend_id)
        return self._spend(conn, row)

    def list_spends(
        self, conn: Connection, wallet_id: str, *, after: str | None = None, limit: int = 25
    ) -> Page[WalletSpend]:
        self.get_wallet(conn, wallet_id)
        query = select(wallet_spends).where(wallet_spends.c.wallet_id == wallet_id)
        return page(conn, query, wallet_spends.c.id, after, limit, lambda r: self._spend(conn, r))

    def refund_spend(
        self,
        conn: Connection,
        wallet_id: str,
        spend_id: str,
        *,
        amount: int | None = None,
        metadata: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> WalletRefund:
        """Give back (part of) a spend: ``amount`` None is what is left of it. Never more than
        the spend (``RefundExceedsSpend``). The money goes back to the lots the spend took from,
        the latest-expiring first (see ``marketplace.wallets``)."""
        check_amount_or_none(amount)
        wallet = self._lock_wallet(conn, wallet_id)
        now = self.wallet_now(conn, wallet, now)
        spend = self.get_spend(conn, wallet_id, spend_id)
        left = spend.amount - spend.refunded_amount
        if amount is None:
            amount = left
        if amount <= 0 or amount > left:
            raise errors.RefundExceedsSpend(
                f"spend {spend_id!r} of {spend.amount} has {left} left to refund, less than "
                f"{amount}",
                spend_amount=spend.amount,
                refunded_amount=spend.refunded_amount,
            )
        # Latest expiry first (no expiry first of all): the reverse of the order spent.
        back: list[tuple[str, int]] = []
        due = amount
        for lot in reversed(spend.lots):
            if due == 0:
                break
            n = min(due, lot.amount - lot.refunded)
            if n > 0:
                back.append((lot.lot_id, n))
                due -= n
        assert due == 0, "a spend's lots add up to its amount"
        ledger_id, accounts = self.wallet_system_accounts(
            conn, wallet.currency, livemode=wallet.livemode
        )
        refund_id = new_id("wrf")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
                # On a test clock it counts from the clock's time.
                effective_at=now if wallet.test_clock_id is not None else None,
                entries=(
                    NewEntry(accounts[WalletSystemAccount.SPENDS], Direction.DEBIT, amount),
                    NewEntry(wallet.ledger_account_id, Direction.CREDIT, amount),
                ),
                external_id=f"wallet-refund:{refund_id}",
                description=f"Refund {refund_id} of spend {spend_id} to wallet {wallet_id}",
                metadata={
                    "kind": "wallet_refund",
                    "wallet_id": wallet_id,
                    "spend_id": spend_id,
                    "refund_id": refund_id,
                },
            ),
        )
        for lot_id, n in back:
            conn.execute(_REFUND_TO_LOT, {"lot": lot_id, "n": n, "now": now})
            conn.execute(
                wallet_spend_lots.update()
                .where(
                    wallet_spend_lots.c.spend_id == spend_id, wallet_spend_lots.c.lot_id == lot_id
                )
                .values(refunded=wallet_spend_lots.c.refunded + n)
            )
        refunded = conn.execute(
            wallet_spends.update()
            .where(wallet_spends.c.id == spend_id)
            .values(refunded_amount=wallet_spends.c.refunded_amount + amount, updated_at=now)
            .returning(wallet_spends.c.refunded_amount)
        ).scalar_one()
        row = conn.execute(
            wallet_refunds.insert()
            .values(
                id=refund_id,
                spend_id=spend_id,
                wallet_id=wallet_id,
                amount=amount,
                ledger_transaction_id=txn.id,
                metadata=metadata or {},
                created_at=now,
            )
            .returning(*wallet_refunds.c)
        ).one()
        # A lot whose expiry passed is due again with what came back to it.
        expiries = [lot.expires_at for lot in spend.lots if lot.lot_id in dict(back)]
        soonest = min((e for e in expiries if e is not None), default=None)
        if soonest is not None:
            self._request_wake(conn, wallet_id, soonest)
        refund = from_row(WalletRefund, row, spend_refunded_amount=refunded)
        self._event(conn, wallet_id, EventType.WALLET_SPEND_REFUNDED, refund)
        return refund

    # ------------------------------------------------------------ internals

    def _spend(self, conn: Connection, row: Row[Any]) -> WalletSpend:
        lots = conn.execute(_SPEND_LOTS, {"spend": row.id}).all()
        return from_row(
            WalletSpend,
            row,
            lots=tuple(SpentLot(r.lot_id, r.amount, r.refunded, r.expires_at) for r in lots),
        )


# -------------------------------------------------------------------- SQL

# Money back to a lot; an expired lot is settled again (and due at once).
_REFUND_TO_LOT = text(
    """
UPDATE wallet_lots
   SET remaining = remaining + :n, status = 'settled', updated_at = :now
 WHERE id = :lot
"""
)

_SPEND_LOTS = text(
    """
SELECT s.lot_id, s.amount, s.refunded, l.expires_at
  FROM wallet_spend_lots s JOIN wallet_lots l ON l.id = s.lot_id
 WHERE s.spend_id = :spend
 ORDER BY l.expires_at NULLS LAST, l.created_at, l.id
"""
)
