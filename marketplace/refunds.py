"""Refunds of an order's earning (DESIGN.md, "The seller's money", 5), keyed by the refund id.

On hold, the pending earning is archived and the remainder, if any, booked again
(``rebook:<n>:<seller>/<order>``, same hold end) so the hold workflow posts the remainder; posted,
a posted debit of the seller (``refund:<id>``) that may take the seller below zero (a refund is
not optional). A negative seller is paid nothing (``nothing_to_pay``) until later earnings cover
it.

**The fee's share of a refund** (the platform refunds its fee in proportion): after a refund the
fee refunded in total is ``ceil(fee * refunded / amount)`` (``refunded`` the gross refunded so
far), so the seller's total share is ``floor(net * refunded / amount)``: rounding always falls on
the platform, the seller never loses more than its proportional share, and a full refund, in one
go or in parts, refunds exactly ``fee`` and ``net``.

Like every marketplace method, each takes a ``Connection`` inside a database transaction the
caller owns and never commits.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Row

from ledger_core import (
    Direction,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
    ValidationFailed,
)
from marketplace.checks import check_amount_or_none
from marketplace.errors import (
    InvalidEarningState,
    RefundConflict,
    RefundExceedsEarning,
    RefundNotFound,
)
from marketplace.events import EventType, earning_object, record_event
from marketplace.rows import from_row, row_by_id
from marketplace.service import OnMarketplace
from marketplace.tables import earnings, refunds
from marketplace.types import EarningStatus, PlatformAccount, PlatformLedger, Refund, Seller

_REFUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")


def refund_external_id(refund_id: str) -> str:
    return f"refund:{refund_id}"


def rebook_external_id(seller_id: str, order_id: str, n: int) -> str:
    """The remainder of an earning on hold after its ``n``-th refund (a seller id has no ``/``,
    and the prefix is not an earning's, so the key names one earning and refund)."""
    return f"rebook:{n}:{seller_id}/{order_id}"


class Refunds(OnMarketplace):
    """Refunds of a ``Marketplace``'s earnings. Stateless."""

    def refund_earning(
        self,
        conn: Connection,
        *,
        refund_id: str,
        seller_id: str,
        order_id: str,
        amount: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Refund:
        """Refund ``amount`` (gross, minor units; None: all that is left) of the seller's share
        of an order.

        On hold: archive the pending earning and book the remainder again (same hold end), or
        cancel the earning when nothing is left. Posted: a posted debit seller (its share) +
        fees revenue (the fee's share), credit clearing, with no balance condition. Idempotent
        by refund id (``RefundConflict`` for other terms); never more than what is left
        (``RefundExceedsEarning``).
        """
        if not isinstance(refund_id, str) or not _REFUND_ID.match(refund_id):
            raise ValidationFailed(
                "refund_id must be 1-201 characters of letters, digits and _ . : -",
                field="refund_id",
            )
        check_amount_or_none(amount)
        row = self.marketplace.locked_earning(conn, seller_id, order_id)
        existing = row_by_id(conn, refunds, refund_id)
        if existing is not None:
            if (existing.seller_id, existing.order_id) != (seller_id, order_id) or (
                amount is not None and existing.amount != amount
            ):
                raise RefundConflict(
                    f"refund {refund_id!r} exists for order {existing.order_id}, amount "
                    f"{existing.amount}",
                    refund_id=refund_id,
                )
            return _refund(existing, row)
        left = row.amount - row.refunded_amount
        if amount is None:
            amount = left
        if amount <= 0 or amount > left or row.status == EarningStatus.CANCELLED:
            raise RefundExceedsEarning(
                f"order {order_id!r} has {max(left, 0) if row.status != 'cancelled' else 0} left "
                f"to refund; cannot refund {amount}",
                field="amount",
                refundable=left if row.status != EarningStatus.CANCELLED else 0,
            )
        before, after = row.refunded_amount, row.refunded_amount + amount
        fee_amount = _fee_share(row.fee, after, row.amount) - _fee_share(
            row.fee, before, row.amount
        )
        seller_amount = amount - fee_amount
        seller = self.marketplace.get_seller(conn, row.seller_id)
        platform = self.marketplace.platform_ledger(conn, seller.currency, livemode=seller.livemode)
        now = self.marketplace.seller_now(conn, row.seller_id)  # a test clock's seller: its time
        earning_values: dict[str, Any] = {"refunded_amount": after, "updated_at": now}
        txn_id: uuid.UUID | None
        if row.status == EarningStatus.ON_HOLD:
            kind = "during_hold"
            txn_id = self._during_hold(
                conn, row, seller, platform, refund_id, after, now, earning_values
            )
        elif row.status in (EarningStatus.POSTED, EarningStatus.REFUNDED):
            kind = "after_posting"
            txn_id = self._after_posting(
                conn, row, seller, platform, refund_id, amount, fee_amount, seller_amount
            )
            if after == row.amount:
                earning_values["status"] = str(EarningStatus.REFUNDED)
        else:  # pragma: no cover - statuses are exhaustive
            raise InvalidEarningState(
                f"earning of order {order_id!r} is {row.status}", status=row.status
            )
        earning_row = conn.execute(
            earnings.update()
            .where(earnings.c.seller_id == seller_id, earnings.c.order_id == order_id)
            .values(**earning_values)
            .returning(*earnings.c)
        ).one()
        refund_row = conn.execute(
            refunds.insert()
            .values(
                id=refund_id,
                order_id=order_id,
                seller_id=row.seller_id,
                currency=row.currency,
                amount=amount,
                fee_amount=fee_amount,
                seller_amount=seller_amount,
                kind=kind,
                status="completed",
                ledger_transaction_id=txn_id,
                metadata=metadata or {},
                created_at=now,
                completed_at=now,
            )
            .returning(*refunds.c)
        ).one()
        refund = _refund(refund_row, earning_row)
        record_event(
            conn,
            row.seller_id,
            EventType.EARNING_REFUNDED,
            {
                "object": earning_object(self.marketplace.get_earning(conn, seller_id, order_id)),
                "refund": refund_object(refund),
            },
        )
        if kind == "after_posting":
            self.marketplace.note_available_balance(conn, row.seller_id)
        return refund

    def _during_hold(
        self,
        conn: Connection,
        row: Row[Any],
        seller: Seller,
        platform: PlatformLedger,
        refund_id: str,
        after: int,
        now: datetime,
        earning_values: dict[str, Any],
    ) -> uuid.UUID | None:
        """Archive the pending earning and book what is left of it again (same hold end), or
        cancel it when nothing is left; the earning's new values go to ``earning_values``."""
        seller_id, order_id = row.seller_id, row.order_id
        self.ledger.archive_transaction(conn, row.ledger_transaction_id)
        gross_left = row.amount - after
        if gross_left == 0:
            earning_values.update(status=str(EarningStatus.CANCELLED), cancelled_at=now)
            return None
        fee_left = row.fee - _fee_share(row.fee, after, row.amount)
        net_left = gross_left - fee_left
        rebooks = conn.execute(
            select(func.count())
            .select_from(refunds)
            .where(
                refunds.c.seller_id == seller_id,
                refunds.c.order_id == order_id,
                refunds.c.kind == "during_hold",
            )
        ).scalar_one()
        entries = [
            NewEntry(platform.account(PlatformAccount.CLEARING), Direction.DEBIT, gross_left)
        ]
        if net_left > 0:
            entries.append(NewEntry(seller.ledger_account_id, Direction.CREDIT, net_left))
        if fee_left > 0:
            entries.append(
                NewEntry(platform.account(PlatformAccount.FEES_REVENUE), Direction.CREDIT, fee_left)
            )
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=tuple(entries),
                status=TransactionStatus.PENDING,
                external_id=rebook_external_id(seller_id, order_id, int(rebooks) + 1),
                description=f"Earning of seller {seller_id} for order {order_id} "
                f"after refund {refund_id}",
                metadata={
                    "kind": "earning",
                    "seller_id": seller_id,
                    "order_id": order_id,
                    "refund_id": refund_id,
                },
            ),
        )
        earning_values.update(
            ledger_transaction_id=txn.id,
            # The reserve applies to what is left.
            reserve_amount=min(net_left * row.reserve_percent_bp // 10_000, row.net),
        )
        return txn.id

    def _after_posting(
        self,
        conn: Connection,
        row: Row[Any],
        seller: Seller,
        platform: PlatformLedger,
        refund_id: str,
        amount: int,
        fee_amount: int,
        seller_amount: int,
    ) -> uuid.UUID:
        """A posted debit of the seller's and the fee's shares, credit clearing (no balance
        condition: a refund is not optional)."""
        entries = []
        if seller_amount > 0:
            entries.append(NewEntry(seller.ledger_account_id, Direction.DEBIT, seller_amount))
        if fee_amount > 0:
            entries.append(
                NewEntry(
                    platform.account(PlatformAccount.FEES_REVENUE), Direction.DEBIT, fee_amount
                )
            )
        entries.append(
            NewEntry(platform.account(PlatformAccount.CLEARING), Direction.CREDIT, amount)
        )
        order_id = row.order_id
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=tuple(entries),
                status=TransactionStatus.POSTED,
                external_id=refund_external_id(refund_id),
                description=f"Refund {refund_id} of order {order_id} (seller {row.seller_id})",
                metadata={
                    "kind": "refund",
                    "seller_id": row.seller_id,
                    "order_id": order_id,
                    "refund_id": refund_id,
                },
            ),
        )
        return txn.id

    def get_refund(self, conn: Connection, refund_id: str) -> Refund:
        row = row_by_id(conn, refunds, refund_id)
        if row is None:
            raise RefundNotFound(f"refund {refund_id!r} not found", resource="refund")
        earning = self.marketplace.earning_row(conn, row.seller_id, row.order_id)
        assert earning is not None
        return _refund(row, earning)


def _fee_share(fee: int, refunded: int, amount: int) -> int:
    """The fee refunded in total once ``refunded`` of ``amount`` is: rounded up (the seller's
    share rounds down)."""
    return -(-fee * refunded // amount)


def _refund(row: Row[Any], earning: Row[Any]) -> Refund:
    return from_row(
        Refund,
        row,
        earning_status=earning.status,
        earning_refunded_amount=earning.refunded_amount,
    )


def refund_object(r: Refund) -> dict[str, Any]:
    return {
        "object": "refund",
        "id": r.id,
        "order_id": r.order_id,
        "seller_id": r.seller_id,
        "currency": r.currency,
        "amount": r.amount,
        "fee_amount": r.fee_amount,
        "seller_amount": r.seller_amount,
        "kind": r.kind,
        "status": r.status,
        "ledger_transaction_id": str(r.ledger_transaction_id) if r.ledger_transaction_id else None,
        "earning_status": r.earning_status,
        "created_at": r.created_at,
    }
