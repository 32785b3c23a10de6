"""Payouts and refunds on the marketplace's ledger (DESIGN.md, "The seller's money", 4 and 5).

``Payouts`` takes a ``Marketplace``; like it, every method takes a ``Connection`` inside a
database transaction the caller owns, never commits, and is idempotent by a key:

* payout accounts: ``set_payout_account`` / ``get_payout_account`` (where a seller is paid; the
  full number is kept for the rail, ``PayoutAccount.masked_account_number`` is what responses show);
* the payout life cycle, keyed by the payout id (ledger key ``payout:<id>``):

  ======================  ===============================================================
  ``reserve_payout``      pending debit seller -> payouts_in_transit, written only if the
                          seller's available balance stays >= 0 -> ``pending``
  ``begin_submission``    marks that the rail is about to be called (a cancel is refused
                          from then on, so a payout the rail may have is never archived)
  ``mark_submitted``      the rail accepted it -> ``processing``
  ``mark_paid``           post the debit -> ``paid``
  ``mark_failed``         archive the debit (money available again) -> ``failed``
  ``mark_returned``       reverse the posted debit (``payout:<id>:return``) -> ``returned``
  ``cancel_payout``       before submission only: archive -> ``cancelled``
  ======================  ===============================================================

  Asking for the state a payout is already in is a no-op; an impossible move raises
  ``InvalidPayoutState``.
* refunds of an order's earning, keyed by the refund id (``refund_earning``): on hold, the pending
  earning is archived and the remainder, if any, booked again (``rebook:<n>:<seller>/<order>``,
  same hold end) so the hold workflow posts the remainder; posted, a posted debit of the seller
  (``refund:<id>``) that may take the seller below zero (a refund is not optional). A negative
  seller is paid nothing (``nothing_to_pay``) until later earnings cover it.

**The fee's share of a refund** (the platform refunds its fee in proportion): after a refund the
fee refunded in total is ``ceil(fee * refunded / amount)`` (``refunded`` the gross refunded so
far), so the seller's total share is ``floor(net * refunded / amount)``: rounding always falls on
the platform, the seller never loses more than its proportional share, and a full refund, in one
go or in parts, refunds exactly ``fee`` and ``net``.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import (
    BalanceCondition,
    BalanceConditionFailed,
    BalanceKind,
    ConditionOp,
    Direction,
    IdempotencyConflict,
    InvalidStateTransition,
    NewEntry,
    NewLedgerTransaction,
    NotFound,
    TransactionStatus,
    ValidationFailed,
)
from marketplace import errors as market_errors
from marketplace.events import EventType, earning_object, record_event
from marketplace.service import MAX_PAGE, Marketplace
from marketplace.tables import earnings, payout_accounts, payouts, refunds
from marketplace.types import EarningStatus, Page, PlatformAccount

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_REFUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")
_ACCOUNT = re.compile(r"^[0-9]{4,34}$")
_ROUTING = re.compile(r"^[0-9]{9}$")


def payout_external_id(payout_id: str) -> str:
    return f"payout:{payout_id}"


def payout_return_external_id(payout_id: str) -> str:
    return f"payout:{payout_id}:return"


def refund_external_id(refund_id: str) -> str:
    return f"refund:{refund_id}"


def rebook_external_id(seller_id: str, order_id: str, n: int) -> str:
    """The remainder of an earning on hold after its ``n``-th refund (a seller id has no ``/``,
    and the prefix is not an earning's, so the key names one earning and refund)."""
    return f"rebook:{n}:{seller_id}/{order_id}"


# -------------------------------------------------------------------- errors


class PayoutAccountMissing(InvalidStateTransition):
    """The seller has no payout account: it is never paid until it has one."""

    code = "payout_account_missing"


class PayoutAccountNotFound(NotFound):
    code = "payout_account_not_found"


class NothingToPay(BalanceConditionFailed):
    """A payout of the whole available balance, and available is 0 or negative."""

    code = "nothing_to_pay"


class PayoutNotFound(NotFound):
    code = "payout_not_found"


class PayoutConflict(IdempotencyConflict):
    """The payout id exists for another seller or amount."""

    code = "payout_conflict"


class InvalidPayoutState(InvalidStateTransition):
    """The payout is not in a state that allows this (e.g. cancelling a submitted payout)."""

    code = "invalid_payout_state"


class RefundConflict(IdempotencyConflict):
    """The refund id exists for another order or amount."""

    code = "refund_conflict"


class RefundExceedsEarning(ValidationFailed):
    """More than what is left of the earning (amount - refunded so far)."""

    code = "refund_exceeds_earning"


class RefundNotFound(NotFound):
    code = "refund_not_found"


# -------------------------------------------------------------------- types


class PayoutState(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"
    CANCELLED = "cancelled"


def mask(account_number: str) -> str:
    """``••••6789``: only the last 4 digits."""
    return "\u2022" * 4 + account_number[-4:]


@dataclass(frozen=True, slots=True)
class PayoutAccount:
    seller_id: str
    account_number: str
    """The full number, for the rail only. Responses use ``masked_account_number``."""
    routing_number: str
    holder_name: str
    created_at: datetime
    updated_at: datetime

    @property
    def last4(self) -> str:
        return self.account_number[-4:]

    @property
    def masked_account_number(self) -> str:
        return mask(self.account_number)

    def __repr__(self) -> str:  # never log the full number
        return f"PayoutAccount(seller_id={self.seller_id!r}, account=…{self.last4})"


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    seller_id: str
    currency: str
    amount: int
    """Minor units, > 0."""
    status: PayoutState
    origin: str
    account_number: str
    """The destination as it was when the payout was made (full: for the rail only)."""
    routing_number: str
    holder_name: str
    ledger_transaction_id: uuid.UUID
    return_transaction_id: uuid.UUID | None
    rail_reference: str | None
    failure_code: str | None
    failure_reason: str | None
    submitted_at: datetime | None
    paid_at: datetime | None
    failed_at: datetime | None
    returned_at: datetime | None
    cancelled_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def masked_account_number(self) -> str:
        return mask(self.account_number)

    def __repr__(self) -> str:
        return f"Payout(id={self.id!r}, seller_id={self.seller_id!r}, status={self.status})"


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    order_id: str
    seller_id: str
    currency: str
    amount: int
    """Gross refunded, minor units."""
    fee_amount: int
    """The platform fee's share (taken back from fees revenue)."""
    seller_amount: int
    """The seller's share: amount - fee_amount."""
    kind: str
    """during_hold | after_posting"""
    status: str
    ledger_transaction_id: uuid.UUID | None
    """after_posting: the debit; during_hold: the remainder booked again (None if nothing left)."""
    metadata: dict[str, Any]
    created_at: datetime
    completed_at: datetime | None
    earning_status: str
    """The earning's status after the refund (on_hold, cancelled, posted, refunded)."""
    earning_refunded_amount: int


_SUBMITTED_OR_LATER = {PayoutState.PROCESSING, PayoutState.PAID, PayoutState.RETURNED}


class Payouts:
    """Payout accounts, payouts and refunds of a ``Marketplace``. Stateless."""

    def __init__(self, marketplace: Marketplace | None = None) -> None:
        self.marketplace = marketplace or Marketplace()
        self.ledger = self.marketplace.ledger

    # ------------------------------------------------------------ payout accounts

    def set_payout_account(
        self,
        conn: Connection,
        seller_id: str,
        account_number: str,
        routing_number: str,
        holder_name: str,
    ) -> PayoutAccount:
        """Create or replace where the seller is paid. Payouts already made keep their
        destination (each payout keeps a copy)."""
        if not isinstance(account_number, str) or not _ACCOUNT.match(account_number):
            raise ValidationFailed("account_number must be 4-34 digits", field="account_number")
        if not isinstance(routing_number, str) or not _ROUTING.match(routing_number):
            raise ValidationFailed("routing_number must be 9 digits", field="routing_number")
        if not isinstance(holder_name, str) or not 1 <= len(holder_name.strip()) <= 200:
            raise ValidationFailed("holder_name must be 1-200 characters", field="holder_name")
        self.marketplace.get_seller(conn, seller_id)
        now = _now()
        stmt = pg_insert(payout_accounts).values(
            seller_id=seller_id,
            account_number=account_number,
            routing_number=routing_number,
            holder_name=holder_name,
            created_at=now,
            updated_at=now,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["seller_id"],
                set_={
                    "account_number": stmt.excluded.account_number,
                    "routing_number": stmt.excluded.routing_number,
                    "holder_name": stmt.excluded.holder_name,
                    "updated_at": now,
                },
            )
        )
        return self.get_payout_account(conn, seller_id)

    def get_payout_account(self, conn: Connection, seller_id: str) -> PayoutAccount:
        row = conn.execute(
            select(payout_accounts).where(payout_accounts.c.seller_id == seller_id)
        ).one_or_none()
        if row is None:
            self.marketplace.get_seller(conn, seller_id)  # an unknown seller: seller_not_found
            raise PayoutAccountNotFound(
                f"seller {seller_id!r} has no payout account", resource="payout_account"
            )
        return PayoutAccount(
            seller_id=row.seller_id,
            account_number=row.account_number,
            routing_number=row.routing_number,
            holder_name=row.holder_name,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # ------------------------------------------------------------ payouts

    def reserve_payout(
        self,
        conn: Connection,
        *,
        payout_id: str,
        seller_id: str,
        amount: int | None = None,
        origin: str = "manual",
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Payout:
        """Reserve the seller's money for a payout: a pending debit seller -> payouts in
        transit (``payout:<id>``), written only if available stays >= 0, and the payouts row with
        a copy of the destination. ``amount`` None: the whole available balance.

        Idempotent by payout id: the same seller (and amount, when given) returns the payout as
        it is now; otherwise ``PayoutConflict``. Raises ``PayoutAccountMissing``,
        ``NothingToPay`` (available <= 0 and no amount), ``BalanceConditionFailed``
        (``insufficient_balance``: amount above available).
        """
        _check_id(payout_id, "payout_id")
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 2**63
        ):
            raise ValidationFailed(
                "amount must be a positive integer of minor units", field="amount"
            )
        if origin not in ("manual", "scheduled"):
            raise ValidationFailed("origin must be manual or scheduled", field="origin")
        # One reservation per seller at a time: a second "everything available" payout then sees
        # what the first left (nothing_to_pay), not a failed balance condition.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"payout-seller:{seller_id}"},
        )
        existing = self._payout_row(conn, payout_id)
        if existing is not None:
            return _same_payout(existing, seller_id, amount)
        seller = self.marketplace.get_seller(conn, seller_id)
        try:
            account = self.get_payout_account(conn, seller_id)
        except PayoutAccountNotFound:
            raise PayoutAccountMissing(
                f"seller {seller_id!r} has no payout account; it is not paid until it has one",
                seller_id=seller_id,
            ) from None
        self.marketplace.lock_seller(conn, seller_id)
        available = self.marketplace.seller_balances(conn, seller_id).available
        if amount is None:
            if available <= 0:
                raise NothingToPay(
                    f"seller {seller_id!r} has nothing available to pay out "
                    f"(available {available})",
                    available=available,
                )
            amount = available
        elif amount > available:
            raise BalanceConditionFailed(
                f"seller {seller_id!r} has {available} available, less than {amount}",
                available=available,
                account_id=str(seller.ledger_account_id),
            )
        platform = self.marketplace.platform_ledger(conn, seller.currency)
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=(
                    NewEntry(
                        seller.ledger_account_id,
                        Direction.DEBIT,
                        amount,
                        conditions=(BalanceCondition(BalanceKind.AVAILABLE, ConditionOp.GTE, 0),),
                    ),
                    NewEntry(
                        platform.account(PlatformAccount.PAYOUTS_IN_TRANSIT),
                        Direction.CREDIT,
                        amount,
                    ),
                ),
                status=TransactionStatus.PENDING,
                external_id=payout_external_id(payout_id),
                description=f"Payout {payout_id} to seller {seller_id}",
                metadata={"kind": "payout", "seller_id": seller_id, "payout_id": payout_id},
            ),
        )
        now = _now()
        meta = dict(metadata or {})
        if run_id is not None:
            meta["run_id"] = run_id
        row = conn.execute(
            payouts.insert()
            .values(
                id=payout_id,
                seller_id=seller_id,
                currency=seller.currency,
                amount=amount,
                status=str(PayoutState.PENDING),
                origin=origin,
                account_number=account.account_number,
                routing_number=account.routing_number,
                holder_name=account.holder_name,
                ledger_transaction_id=txn.id,
                metadata=meta,
                created_at=now,
                updated_at=now,
            )
            .returning(*payouts.c)
        ).one()
        return self._event(conn, _payout(row), EventType.PAYOUT_CREATED)

    def get_payout(self, conn: Connection, payout_id: str) -> Payout:
        row = self._payout_row(conn, payout_id)
        if row is None:
            raise PayoutNotFound(f"payout {payout_id!r} not found", resource="payout")
        return _payout(row)

    def list_payouts(
        self,
        conn: Connection,
        *,
        seller_id: str | None = None,
        status: PayoutState | str | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Payout]:
        """Payouts by id, optionally of one seller and in one status."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"per_page must be between 1 and {MAX_PAGE}", field="per_page")
        query = select(payouts)
        if seller_id is not None:
            query = query.where(payouts.c.seller_id == seller_id)
        if status is not None:
            try:
                state = PayoutState(status)
            except ValueError:
                raise ValidationFailed("unknown payout status", field="status") from None
            query = query.where(payouts.c.status == str(state))
        if after is not None:
            query = query.where(payouts.c.id > after)
        rows = conn.execute(query.order_by(payouts.c.id).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(items=[_payout(r) for r in rows], next_after=rows[-1].id if more else None)

    def begin_submission(self, conn: Connection, payout_id: str) -> Payout:
        """The rail is about to be called: from now on the payout cannot be cancelled. A
        cancelled payout is returned as it is (the caller must not submit it)."""
        row = self._locked(conn, payout_id)
        if row.status == PayoutState.PENDING and row.submitted_at is None:
            return self._update(conn, payout_id, submitted_at=_now())
        return _payout(row)

    def mark_submitted(self, conn: Connection, payout_id: str, rail_reference: str) -> Payout:
        """The rail accepted the payout: ``processing``."""
        row = self._locked(conn, payout_id)
        if row.status == PayoutState.PENDING:
            return self._update(
                conn,
                payout_id,
                status=str(PayoutState.PROCESSING),
                rail_reference=rail_reference,
                submitted_at=row.submitted_at or _now(),
            )
        if row.status in _SUBMITTED_OR_LATER or row.status == PayoutState.FAILED:
            return _payout(row)
        raise _invalid(row, "submitted")

    def mark_paid(self, conn: Connection, payout_id: str) -> Payout:
        """The rail paid it: post the debit (posted balance drops)."""
        row = self._locked(conn, payout_id)
        if row.status in (PayoutState.PENDING, PayoutState.PROCESSING):
            if row.submitted_at is None:
                raise _invalid(row, "paid")
            self.ledger.post_transaction(conn, row.ledger_transaction_id)
            paid = self._update(conn, payout_id, status=str(PayoutState.PAID), paid_at=_now())
            # Posting the reserved debit moves posted, not available: no balance event.
            return self._event(conn, paid, EventType.PAYOUT_PAID, balance=False)
        if row.status in (PayoutState.PAID, PayoutState.RETURNED):
            return _payout(row)
        raise _invalid(row, "paid")

    def mark_failed(self, conn: Connection, payout_id: str, code: str, reason: str) -> Payout:
        """The rail failed or refused it: archive the debit (the money is available again)."""
        row = self._locked(conn, payout_id)
        if row.status in (PayoutState.PENDING, PayoutState.PROCESSING):
            self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            failed = self._update(
                conn,
                payout_id,
                status=str(PayoutState.FAILED),
                failed_at=_now(),
                failure_code=code,
                failure_reason=reason,
            )
            return self._event(conn, failed, EventType.PAYOUT_FAILED)
        if row.status == PayoutState.FAILED:
            return _payout(row)
        raise _invalid(row, "failed")

    def mark_returned(self, conn: Connection, payout_id: str, code: str, reason: str) -> Payout:
        """The bank returned a paid payout: a reversal credits the seller back."""
        row = self._locked(conn, payout_id)
        if row.status == PayoutState.PAID:
            reversal = self.ledger.reverse_transaction(
                conn,
                row.ledger_transaction_id,
                external_id=payout_return_external_id(payout_id),
                description=f"Return of payout {payout_id} ({code})",
                metadata={"kind": "payout_return", "payout_id": payout_id, "code": code},
            )
            returned = self._update(
                conn,
                payout_id,
                status=str(PayoutState.RETURNED),
                returned_at=_now(),
                return_transaction_id=reversal.id,
                failure_code=code,
                failure_reason=reason,
            )
            return self._event(conn, returned, EventType.PAYOUT_RETURNED)
        if row.status == PayoutState.RETURNED:
            return _payout(row)
        raise _invalid(row, "returned")

    def cancel_payout(self, conn: Connection, payout_id: str) -> Payout:
        """Cancel a payout the rail has not been asked to pay: archive the debit."""
        row = self._locked(conn, payout_id)
        if row.status == PayoutState.PENDING and row.submitted_at is None:
            self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            cancelled = self._update(
                conn, payout_id, status=str(PayoutState.CANCELLED), cancelled_at=_now()
            )
            return self._event(conn, cancelled, EventType.PAYOUT_CANCELLED)
        if row.status == PayoutState.CANCELLED:
            return _payout(row)
        raise InvalidPayoutState(
            f"payout {payout_id!r} was already submitted to the rail ({row.status}); only a "
            "payout not yet submitted is cancelled",
            status=row.status,
        )

    def _event(
        self, conn: Connection, payout: Payout, type: EventType, *, balance: bool = True
    ) -> Payout:
        """Record the payout's event (marketplace.events) and, if its money moved in or out of
        available, the seller's balance event."""
        record_event(conn, payout.seller_id, type, {"object": payout_object(payout)})
        if balance:
            self.marketplace.note_available_balance(conn, payout.seller_id)
        return payout

    def _locked(self, conn: Connection, payout_id: str) -> Row[Any]:
        """The payout's row, locked, and then its seller (``Marketplace.lock_seller``)."""
        row = self._payout_row(conn, payout_id, for_update=True)
        if row is None:
            raise PayoutNotFound(f"payout {payout_id!r} not found", resource="payout")
        self.marketplace.lock_seller(conn, row.seller_id)
        return row

    @staticmethod
    def _update(conn: Connection, payout_id: str, **values: Any) -> Payout:
        row = conn.execute(
            payouts.update()
            .where(payouts.c.id == payout_id)
            .values(**values, updated_at=_now())
            .returning(*payouts.c)
        ).one()
        return _payout(row)

    @staticmethod
    def _payout_row(
        conn: Connection, payout_id: str, *, for_update: bool = False
    ) -> Row[Any] | None:
        query = select(payouts).where(payouts.c.id == payout_id)
        if for_update:
            query = query.with_for_update()
        return conn.execute(query).one_or_none()

    # ------------------------------------------------------------ refunds

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
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 2**63
        ):
            raise ValidationFailed(
                "amount must be a positive integer of minor units", field="amount"
            )
        row = conn.execute(
            select(earnings)
            .where(earnings.c.seller_id == seller_id, earnings.c.order_id == order_id)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise market_errors.EarningNotFound(
                f"earning of order {order_id!r} of seller {seller_id!r} not found"
            )
        self.marketplace.lock_seller(conn, seller_id)
        existing = self._refund_row(conn, refund_id)
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
        platform = self.marketplace.platform_ledger(conn, seller.currency)
        now = _now()
        earning_values: dict[str, Any] = {"refunded_amount": after, "updated_at": now}
        txn_id: uuid.UUID | None
        if row.status == EarningStatus.ON_HOLD:
            kind = "during_hold"
            self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            gross_left = row.amount - after
            if gross_left == 0:
                txn_id = None
                earning_values.update(status=str(EarningStatus.CANCELLED), cancelled_at=now)
            else:
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
                    NewEntry(
                        platform.account(PlatformAccount.CLEARING), Direction.DEBIT, gross_left
                    )
                ]
                if net_left > 0:
                    entries.append(NewEntry(seller.ledger_account_id, Direction.CREDIT, net_left))
                if fee_left > 0:
                    entries.append(
                        NewEntry(
                            platform.account(PlatformAccount.FEES_REVENUE),
                            Direction.CREDIT,
                            fee_left,
                        )
                    )
                txn = self.ledger.create_transaction(
                    conn,
                    NewLedgerTransaction(
                        ledger_id=platform.ledger_id,
                        entries=tuple(entries),
                        status=TransactionStatus.PENDING,
                        external_id=rebook_external_id(seller_id, order_id, int(rebooks) + 1),
                        description=f"Earning of seller {row.seller_id} for order {order_id} "
                        f"after refund {refund_id}",
                        metadata={
                            "kind": "earning",
                            "seller_id": row.seller_id,
                            "order_id": order_id,
                            "refund_id": refund_id,
                        },
                    ),
                )
                txn_id = txn.id
                earning_values.update(
                    ledger_transaction_id=txn.id,
                    # The reserve applies to what is left.
                    reserve_amount=min(net_left * row.reserve_percent_bp // 10_000, row.net),
                )
        elif row.status in (EarningStatus.POSTED, EarningStatus.REFUNDED):
            kind = "after_posting"
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
            txn_id = txn.id
            if after == row.amount:
                earning_values["status"] = str(EarningStatus.REFUNDED)
        else:  # pragma: no cover - statuses are exhaustive
            raise market_errors.InvalidEarningState(
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

    def get_refund(self, conn: Connection, refund_id: str) -> Refund:
        row = self._refund_row(conn, refund_id)
        if row is None:
            raise RefundNotFound(f"refund {refund_id!r} not found", resource="refund")
        earning = conn.execute(
            select(earnings).where(
                earnings.c.seller_id == row.seller_id, earnings.c.order_id == row.order_id
            )
        ).one()
        return _refund(row, earning)

    @staticmethod
    def _refund_row(conn: Connection, refund_id: str) -> Row[Any] | None:
        return conn.execute(select(refunds).where(refunds.c.id == refund_id)).one_or_none()


# -------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _check_id(value: object, field: str) -> None:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValidationFailed(
            f"{field} must be 1-128 characters of letters, digits and _ . : - "
            "(starting with a letter or digit)",
            field=field,
        )


def _fee_share(fee: int, refunded: int, amount: int) -> int:
    """The fee refunded in total once ``refunded`` of ``amount`` is: rounded up (the seller's
    share rounds down)."""
    return -(-fee * refunded // amount)


def _invalid(row: Row[Any], target: str) -> InvalidPayoutState:
    return InvalidPayoutState(
        f"payout {row.id!r} is {row.status}; it cannot become {target}", status=row.status
    )


def _same_payout(row: Row[Any], seller_id: str, amount: int | None) -> Payout:
    if row.seller_id != seller_id or (amount is not None and row.amount != amount):
        raise PayoutConflict(
            f"payout {row.id!r} exists for seller {row.seller_id}, amount {row.amount}",
            payout_id=row.id,
        )
    return _payout(row)


def _payout(row: Row[Any]) -> Payout:
    return Payout(
        id=row.id,
        seller_id=row.seller_id,
        currency=row.currency,
        amount=row.amount,
        status=PayoutState(row.status),
        origin=row.origin,
        account_number=row.account_number,
        routing_number=row.routing_number,
        holder_name=row.holder_name,
        ledger_transaction_id=row.ledger_transaction_id,
        return_transaction_id=row.return_transaction_id,
        rail_reference=row.rail_reference,
        failure_code=row.failure_code,
        failure_reason=row.failure_reason,
        submitted_at=row.submitted_at,
        paid_at=row.paid_at,
        failed_at=row.failed_at,
        returned_at=row.returned_at,
        cancelled_at=row.cancelled_at,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _refund(row: Row[Any], earning: Row[Any]) -> Refund:
    return Refund(
        id=row.id,
        order_id=row.order_id,
        seller_id=row.seller_id,
        currency=row.currency,
        amount=row.amount,
        fee_amount=row.fee_amount,
        seller_amount=row.seller_amount,
        kind=row.kind,
        status=row.status,
        ledger_transaction_id=row.ledger_transaction_id,
        metadata=row.metadata,
        created_at=row.created_at,
        completed_at=row.completed_at,
        earning_status=earning.status,
        earning_refunded_amount=earning.refunded_amount,
    )


def payout_object(p: Payout) -> dict[str, Any]:
    """A payout as ``GET /v1/payouts/{id}`` shows it (the account number masked)."""
    return {
        "object": "payout",
        "id": p.id,
        "seller_id": p.seller_id,
        "currency": p.currency,
        "amount": p.amount,
        "status": str(p.status),
        "origin": p.origin,
        "account_number_masked": p.masked_account_number,
        "holder_name": p.holder_name,
        "rail_reference": p.rail_reference,
        "failure_code": p.failure_code,
        "failure_reason": p.failure_reason,
        "ledger_transaction_id": str(p.ledger_transaction_id),
        "return_transaction_id": str(p.return_transaction_id) if p.return_transaction_id else None,
        "workflow_id": f"payout/{p.id}",
        "created_at": p.created_at,
        "submitted_at": p.submitted_at,
        "paid_at": p.paid_at,
        "failed_at": p.failed_at,
        "returned_at": p.returned_at,
        "cancelled_at": p.cancelled_at,
        "metadata": p.metadata,
    }


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
