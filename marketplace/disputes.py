"""Chargebacks: a dispute is a pending debit seller -> disputes (``dispute:<dispute id>``),
archived if won, posted if lost (DESIGN.md, "The seller's money, step by step")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import (
    Direction,
    IdempotencyConflict,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
    ValidationFailed,
)
from marketplace import errors
from marketplace.checks import check_amount, check_aware, check_id, check_order_id
from marketplace.events import EventType, dispute_object, record_event
from marketplace.rows import from_row, page, row_by_id
from marketplace.sellers import MarketCore
from marketplace.tables import disputes, sellers
from marketplace.types import Dispute, DisputeOutcome, DisputeStatus, Page, PlatformAccount


def dispute_external_id(dispute_id: str) -> str:
    return f"dispute:{dispute_id}"


class Disputes(MarketCore):
    """Open, resolve, read and list chargebacks."""

    def open_dispute(
        self,
        conn: Connection,
        *,
        dispute_id: str,
        seller_id: str,
        order_id: str,
        amount: int,
        deadline: datetime,
        reason: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Dispute:
        """Open a chargeback: a pending debit seller -> disputes (``dispute:<id>``), so the
        seller's available balance drops and posted does not. Idempotent by dispute id; other
        terms raise ``DisputeConflict``. No balance condition: a chargeback is not optional,
        and available may go negative."""
        check_id(dispute_id, "id")
        check_order_id(order_id)
        check_amount(amount, "amount")
        check_aware(deadline, "deadline")
        existing = row_by_id(conn, disputes, dispute_id)
        if existing is not None:
            return _same_dispute(existing, seller_id, order_id, amount)
        seller = self.get_seller(conn, seller_id)
        platform = self.platform_ledger(conn, seller.currency, livemode=seller.livemode)
        self.lock_seller(conn, seller_id)
        try:
            txn = self.ledger.create_transaction(
                conn,
                NewLedgerTransaction(
                    ledger_id=platform.ledger_id,
                    entries=(
                        NewEntry(seller.ledger_account_id, Direction.DEBIT, amount),
                        NewEntry(
                            platform.account(PlatformAccount.DISPUTES), Direction.CREDIT, amount
                        ),
                    ),
                    status=TransactionStatus.PENDING,
                    external_id=dispute_external_id(dispute_id),
                    description=f"Dispute {dispute_id} of seller {seller_id}, order {order_id}",
                    metadata={
                        "kind": "dispute",
                        "seller_id": seller_id,
                        "order_id": order_id,
                        "dispute_id": dispute_id,
                    },
                ),
            )
        except IdempotencyConflict as exc:
            raise errors.DisputeConflict(
                f"dispute {dispute_id!r} exists with different terms", dispute_id=dispute_id
            ) from exc
        now = self.seller_now(conn, seller_id)
        inserted = conn.execute(
            pg_insert(disputes)
            .values(
                id=dispute_id,
                seller_id=seller_id,
                order_id=order_id,
                currency=seller.currency,
                amount=amount,
                reason=reason,
                status=str(DisputeStatus.OPEN),
                deadline=deadline,
                ledger_transaction_id=txn.id,
                metadata=metadata or {},
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(*disputes.c)
        ).one_or_none()
        if inserted is None:
            concurrent = row_by_id(conn, disputes, dispute_id)
            assert concurrent is not None
            return _same_dispute(concurrent, seller_id, order_id, amount)
        dispute = _dispute(inserted)
        record_event(conn, seller_id, EventType.DISPUTE_OPENED, {"object": dispute_object(dispute)})
        self.note_available_balance(conn, seller_id)
        return dispute

    def resolve_dispute(
        self, conn: Connection, dispute_id: str, outcome: DisputeOutcome | str
    ) -> Dispute:
        """Won: archive the pending debit (available comes back). Lost: post it. The same
        outcome again is a no-op; the other raises ``DisputeAlreadyResolved``."""
        try:
            outcome = DisputeOutcome(outcome)
        except ValueError:
            raise ValidationFailed("outcome must be won or lost", field="outcome") from None
        row = row_by_id(conn, disputes, dispute_id, for_update=True)
        if row is None:
            raise errors.dispute_not_found(dispute_id)
        if row.status == DisputeStatus.OPEN:
            self.lock_seller(conn, row.seller_id)
            if outcome is DisputeOutcome.WON:
                self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            else:
                self.ledger.post_transaction(conn, row.ledger_transaction_id)
            now = self.seller_now(conn, row.seller_id)
            conn.execute(
                disputes.update()
                .where(disputes.c.id == dispute_id)
                .values(status=str(outcome), resolved_at=now, updated_at=now)
            )
            resolved = self.get_dispute(conn, dispute_id)
            record_event(
                conn,
                row.seller_id,
                EventType.DISPUTE_WON if outcome is DisputeOutcome.WON else EventType.DISPUTE_LOST,
                {"object": dispute_object(resolved)},
            )
            self.note_available_balance(conn, row.seller_id)
            return resolved
        elif row.status != outcome:
            raise errors.DisputeAlreadyResolved(
                f"dispute {dispute_id!r} was already resolved as {row.status}", status=row.status
            )
        return self.get_dispute(conn, dispute_id)

    def get_dispute(self, conn: Connection, dispute_id: str) -> Dispute:
        row = row_by_id(conn, disputes, dispute_id)
        if row is None:
            raise errors.dispute_not_found(dispute_id)
        return _dispute(row)

    def list_disputes(
        self,
        conn: Connection,
        *,
        seller_id: str | None = None,
        status: DisputeStatus | None = None,
        livemode: bool | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Dispute]:
        """Disputes by id; with ``livemode``, those of sellers of that mode only."""
        query = select(disputes)
        if livemode is not None:
            query = query.join(sellers, sellers.c.id == disputes.c.seller_id).where(
                sellers.c.livemode == livemode
            )
        if seller_id is not None:
            query = query.where(disputes.c.seller_id == seller_id)
        if status is not None:
            query = query.where(disputes.c.status == str(DisputeStatus(status)))
        return page(conn, query, disputes.c.id, after, limit, _dispute)


def _dispute(row: Row[Any]) -> Dispute:
    return from_row(Dispute, row, status=DisputeStatus(row.status))


def _same_dispute(row: Row[Any], seller_id: str, order_id: str, amount: int) -> Dispute:
    if (row.seller_id, row.order_id, row.amount) != (seller_id, order_id, amount):
        raise errors.DisputeConflict(
            f"dispute {row.id!r} exists with other terms (seller {row.seller_id}, order "
            f"{row.order_id}, amount {row.amount})",
            dispute_id=row.id,
        )
    return _dispute(row)
