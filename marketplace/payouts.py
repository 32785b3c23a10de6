"""Payouts on the marketplace's ledger (DESIGN.md, "The seller's money", 4); refunds are
``marketplace.refunds``.

``Payouts`` takes a ``Marketplace``; like it, every method takes a ``Connection`` inside a
database transaction the caller owns, never commits, and is idempotent by a key:

* payout accounts: ``set_payout_account`` / ``get_payout_account`` (where a seller is paid; the
  full number is kept for the rail, ``PayoutAccount.masked_account_number`` is what responses show).
  An account is ``active`` or ``failed``: ``mark_failed`` of a failure of the destination marks
  it failed in the same transaction, a failed account is never paid (``PayoutAccountFailed``),
  and setting another account or routing number makes it active again;
* the payout life cycle, keyed by the payout id (ledger key ``payout:<id>``):

  ======================  ===============================================================
  ``reserve_payout``      pending debit seller -> payouts_in_transit, written only if the
                          seller's available balance stays >= 0 -> ``pending``; an instant
                          payout's fee in the same transaction (``marketplace.instant``)
  ``begin_submission``    marks that the rail is about to be called (a cancel is refused
                          from then on, so a payout the rail may have is never archived)
  ``mark_submitted``      the rail accepted it -> ``processing``
  ``mark_paid``           post the debit -> ``paid``
  ``mark_failed``         archive the debit (money available again) -> ``failed``
  ``mark_returned``       reverse the posted debit (``payout:<id>:return``) -> ``returned``;
                          an instant payout's fee is kept (the rail did pay it out)
  ``cancel_payout``       before submission only: archive -> ``cancelled``
  ======================  ===============================================================

  Asking for the state a payout is already in is a no-op; an impossible move raises
  ``InvalidPayoutState``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import (
    BalanceCondition,
    BalanceConditionFailed,
    BalanceKind,
    ConditionOp,
    Direction,
    NewEntry,
    NewLedgerTransaction,
    TransactionStatus,
    ValidationFailed,
)
from marketplace.checks import check_amount_or_none, check_id, check_limit, utc_now
from marketplace.errors import (
    InstantLimitExceeded,
    InstantNotSupported,
    InvalidPayoutState,
    NothingToPay,
    PayoutAccountFailed,
    PayoutAccountMissing,
    PayoutAccountNotFound,
    PayoutConflict,
    payout_not_found,
)
from marketplace.events import EventType, record_event
from marketplace.instant import (
    INSTANT,
    STANDARD,
    InstantAvailability,
    InstantTerms,
    check_method,
    count_instant,
    daily_limit,
    instant_availability,
    instant_used,
    uncount_instant,
    utc_day,
)
from marketplace.rows import from_row, page, row_by_id
from marketplace.service import Marketplace, OnMarketplace
from marketplace.tables import payout_accounts, payouts
from marketplace.types import (
    Page,
    Payout,
    PayoutAccount,
    PayoutState,
    PlatformAccount,
    Seller,
    SellerBalances,
)

_ACCOUNT = re.compile(r"^[0-9]{4,34}$")
_ROUTING = re.compile(r"^[0-9]{9}$")


def payout_external_id(payout_id: str) -> str:
    return f"payout:{payout_id}"


def payout_return_external_id(payout_id: str) -> str:
    return f"payout:{payout_id}:return"


ACCOUNT_ACTIVE = "active"
ACCOUNT_FAILED = "failed"


def _same_destination(account_number: Any, routing_number: Any) -> Any:
    """Whether the payout account row is the destination of these details: its account and
    routing numbers (the holder's name does not change where the money goes)."""
    return and_(
        payout_accounts.c.account_number == account_number,
        payout_accounts.c.routing_number == routing_number,
    )


_SUBMITTED_OR_LATER = {PayoutState.PROCESSING, PayoutState.PAID, PayoutState.RETURNED}


class Payouts(OnMarketplace):
    """Payout accounts and payouts of a ``Marketplace``. Stateless; ``instant`` is the
    platform's terms for instant payouts (fee, daily limit)."""

    def __init__(
        self, marketplace: Marketplace | None = None, instant: InstantTerms | None = None
    ) -> None:
        super().__init__(marketplace)
        self.instant = instant or InstantTerms()

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
        destination (each payout keeps a copy). Another account or routing number makes a failed
        account active again; the same numbers keep it as it is (a dead account stays failed,
        whatever the holder's name)."""
        if not isinstance(account_number, str) or not _ACCOUNT.match(account_number):
            raise ValidationFailed("account_number must be 4-34 digits", field="account_number")
        if not isinstance(routing_number, str) or not _ROUTING.match(routing_number):
            raise ValidationFailed("routing_number must be 9 digits", field="routing_number")
        if not isinstance(holder_name, str) or not 1 <= len(holder_name.strip()) <= 200:
            raise ValidationFailed("holder_name must be 1-200 characters", field="holder_name")
        self.marketplace.get_seller(conn, seller_id)
        now = utc_now()
        stmt = pg_insert(payout_accounts).values(
            seller_id=seller_id,
            account_number=account_number,
            routing_number=routing_number,
            holder_name=holder_name,
            created_at=now,
            updated_at=now,
        )
        same = _same_destination(
            stmt.excluded.account_number, stmt.excluded.routing_number
        ).self_group()

        def unless_same(column: str, active: Any) -> Any:
            return case((same, payout_accounts.c[column]), else_=active)

        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["seller_id"],
                set_={
                    "account_number": stmt.excluded.account_number,
                    "routing_number": stmt.excluded.routing_number,
                    "holder_name": stmt.excluded.holder_name,
                    "status": unless_same("status", ACCOUNT_ACTIVE),
                    "failure_code": unless_same("failure_code", None),
                    "failed_payout_id": unless_same("failed_payout_id", None),
                    "failed_at": unless_same("failed_at", None),
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
        return from_row(PayoutAccount, row)

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
        method: str = STANDARD,
        instant_supported: Callable[[PayoutAccount], bool] | None = None,
    ) -> Payout:
        """Reserve the seller's money for a payout: a pending debit seller -> payouts in
        transit (``payout:<id>``), written only if available stays >= 0, and the payouts row with
        a copy of the destination. ``amount`` None: the whole available balance.

        ``method`` instant: the seller is debited ``amount`` + the fee (``self.instant``), the
        fee credited to the platform's fees revenue in the same pending transaction; ``amount``
        None is the largest payout whose amount and fee fit in available and whose amount fits
        in the day's limit. ``instant_supported`` (the rail's eligibility check) is asked about
        the payout account before anything is written.

        Idempotent by payout id: the same seller, method (and amount, when given) returns the
        payout as it is now; otherwise ``PayoutConflict``. Raises ``PayoutAccountMissing``,
        ``NothingToPay`` (available <= 0 and no amount), ``BalanceConditionFailed``
        (``insufficient_balance``: amount (+ fee) above available), ``InstantNotSupported``,
        ``InstantLimitExceeded``.
        """
        check_id(payout_id, "payout_id")
        check_amount_or_none(amount)
        check_method(method)
        if origin not in ("manual", "scheduled"):
            raise ValidationFailed("origin must be manual or scheduled", field="origin")
        # One reservation per seller at a time: a second "everything available" payout then sees
        # what the first left (nothing_to_pay), not a failed balance condition.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"payout-seller:{seller_id}"},
        )
        existing = row_by_id(conn, payouts, payout_id)
        if existing is not None:
            return _same_payout(existing, seller_id, amount, method)
        seller = self.marketplace.get_seller(conn, seller_id)
        try:
            account = self.get_payout_account(conn, seller_id)
        except PayoutAccountNotFound:
            raise PayoutAccountMissing(
                f"seller {seller_id!r} has no payout account; it is not paid until it has one",
                seller_id=seller_id,
            ) from None
        if account.status == ACCOUNT_FAILED:
            raise PayoutAccountFailed(
                f"seller {seller_id!r}'s payout account failed ({account.failure_code}, payout "
                f"{account.failed_payout_id}); it is not paid until a new payout account is set",
                seller_id=seller_id,
                failure_code=account.failure_code,
            )
        if method == INSTANT and instant_supported is not None and not instant_supported(account):
            raise InstantNotSupported(
                f"seller {seller_id!r}'s payout account (…{account.last4}) does not take instant "
                "payments; pay it with a standard payout",
                seller_id=seller_id,
            )
        self.marketplace.lock_seller(conn, seller_id)
        available = self.marketplace.seller_balances(conn, seller_id).available
        now, fee = utc_now(), 0
        if method == INSTANT:
            amount, fee = self._instant_amount(conn, seller_id, amount, available, now)
        elif amount is None:
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
        return self._reserve(
            conn, payout_id, seller, account, amount, origin, run_id, metadata, method, fee, now
        )

    def _instant_amount(
        self, conn: Connection, seller_id: str, amount: int | None, available: int, now: datetime
    ) -> tuple[int, int]:
        """The instant payout's amount and fee, counted towards the day's limit (under the
        seller's payout lock, which the caller holds)."""
        day = utc_day(now)
        limit = daily_limit(conn, self.instant, seller_id)
        remaining = max(limit - instant_used(conn, seller_id, day), 0)
        if amount is None:
            amount = min(self.instant.largest_amount(max(available, 0)), remaining)
            if amount <= 0:
                if remaining <= 0:
                    raise InstantLimitExceeded(
                        f"seller {seller_id!r} has used its daily instant limit of {limit}; "
                        "0 remains today",
                        remaining=0,
                        limit=limit,
                    )
                raise NothingToPay(
                    f"seller {seller_id!r} has nothing available to pay out instantly "
                    f"(available {available}, the fee is at least {self.instant.fee_minimum})",
                    available=available,
                )
        elif amount > remaining:
            raise InstantLimitExceeded(
                f"an instant payout of {amount} would pass seller {seller_id!r}'s daily instant "
                f"limit of {limit}: {remaining} remains today",
                remaining=remaining,
                limit=limit,
            )
        fee = self.instant.fee(amount)
        if amount + fee > available:
            raise BalanceConditionFailed(
                f"seller {seller_id!r} has {available} available, less than {amount} plus the "
                f"instant fee of {fee}",
                available=available,
            )
        if not count_instant(conn, seller_id, day, amount, limit):
            raise InstantLimitExceeded(
                f"an instant payout of {amount} would pass seller {seller_id!r}'s daily instant "
                f"limit of {limit}",
                limit=limit,
            )
        return amount, fee

    def instant_availability(self, balances: SellerBalances) -> InstantAvailability:
        """What the seller can be paid instantly now, from its balances (which carry its own
        limit and today's instant payouts)."""
        return instant_availability(self.instant, balances)

    def _reserve(
        self,
        conn: Connection,
        payout_id: str,
        seller: Seller,
        account: PayoutAccount,
        amount: int,
        origin: str,
        run_id: str | None,
        metadata: dict[str, Any] | None,
        method: str,
        fee: int,
        now: datetime,
    ) -> Payout:
        seller_id = seller.id
        platform = self.marketplace.platform_ledger(conn, seller.currency)
        # One debit of the seller (amount + fee), checked against available; the fee goes to the
        # platform's revenue in this same (pending) transaction.
        entries = [
            NewEntry(
                seller.ledger_account_id,
                Direction.DEBIT,
                amount + fee,
                conditions=(BalanceCondition(BalanceKind.AVAILABLE, ConditionOp.GTE, 0),),
            ),
            NewEntry(
                platform.account(PlatformAccount.PAYOUTS_IN_TRANSIT), Direction.CREDIT, amount
            ),
        ]
        if fee:
            entries.append(
                NewEntry(platform.account(PlatformAccount.FEES_REVENUE), Direction.CREDIT, fee)
            )
        description = f"Payout {payout_id} to seller {seller_id}"
        if method == INSTANT:
            description = f"Instant payout {payout_id} to seller {seller_id} (fee {fee})"
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=tuple(entries),
                status=TransactionStatus.PENDING,
                external_id=payout_external_id(payout_id),
                description=description,
                metadata={
                    "kind": "payout",
                    "seller_id": seller_id,
                    "payout_id": payout_id,
                    **({"method": method, "fee": str(fee)} if method == INSTANT else {}),
                },
            ),
        )
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
                method=method,
                fee=fee,
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
        row = row_by_id(conn, payouts, payout_id)
        if row is None:
            raise payout_not_found(payout_id)
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
        check_limit(limit)
        query = select(payouts)
        if seller_id is not None:
            query = query.where(payouts.c.seller_id == seller_id)
        if status is not None:
            try:
                state = PayoutState(status)
            except ValueError:
                raise ValidationFailed("unknown payout status", field="status") from None
            query = query.where(payouts.c.status == str(state))
        return page(conn, query, payouts.c.id, after, limit, _payout)

    def begin_submission(self, conn: Connection, payout_id: str) -> Payout:
        """The rail is about to be called: from now on the payout cannot be cancelled. A
        cancelled payout is returned as it is (the caller must not submit it)."""
        row = self._locked(conn, payout_id)
        if row.status == PayoutState.PENDING and row.submitted_at is None:
            return self._update(conn, payout_id, submitted_at=utc_now())
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
                submitted_at=row.submitted_at or utc_now(),
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
            paid = self._update(conn, payout_id, status=str(PayoutState.PAID), paid_at=utc_now())
            # Posting the reserved debit moves posted, not available: no balance event.
            return self._event(conn, paid, EventType.PAYOUT_PAID, balance=False)
        if row.status in (PayoutState.PAID, PayoutState.RETURNED):
            return _payout(row)
        raise _invalid(row, "paid")

    def mark_failed(
        self,
        conn: Connection,
        payout_id: str,
        code: str,
        reason: str,
        *,
        destination_failed: bool = False,
    ) -> Payout:
        """The rail failed or refused it: archive the debit (the money is available again).
        ``destination_failed`` (the code is one of the destination's, the caller decides which):
        also mark the seller's payout account failed, in this same transaction, if it still has
        the payout's details (a new account set meanwhile is not the dead one)."""
        row = self._locked(conn, payout_id)
        if row.status in (PayoutState.PENDING, PayoutState.PROCESSING):
            if destination_failed:
                self._fail_account(conn, row, code)
            self.ledger.archive_transaction(conn, row.ledger_transaction_id)
            self._uncount_instant(conn, row)
            failed = self._update(
                conn,
                payout_id,
                status=str(PayoutState.FAILED),
                failed_at=utc_now(),
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
            if row.fee:
                reversal = self._return_keeping_fee(conn, row, code)
            else:
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
                returned_at=utc_now(),
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
            self._uncount_instant(conn, row)
            cancelled = self._update(
                conn, payout_id, status=str(PayoutState.CANCELLED), cancelled_at=utc_now()
            )
            return self._event(conn, cancelled, EventType.PAYOUT_CANCELLED)
        if row.status == PayoutState.CANCELLED:
            return _payout(row)
        raise InvalidPayoutState(
            f"payout {payout_id!r} was already submitted to the rail ({row.status}); only a "
            "payout not yet submitted is cancelled",
            status=row.status,
        )

    @staticmethod
    def _uncount_instant(conn: Connection, row: Row[Any]) -> None:
        """A failed or cancelled instant payout paid nothing out: it no longer counts towards
        its day's limit."""
        if row.method == INSTANT:
            uncount_instant(conn, row.seller_id, utc_day(row.created_at), row.amount)

    def _return_keeping_fee(self, conn: Connection, row: Row[Any], code: str) -> Any:
        """A returned instant payout: the amount comes back to the seller (debit payouts in
        transit, credit the seller), the fee stays with the platform: the real-time rail paid the
        money out to the destination the seller gave."""
        seller = self.marketplace.get_seller(conn, row.seller_id)
        platform = self.marketplace.platform_ledger(conn, seller.currency)
        return self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=platform.ledger_id,
                entries=(
                    NewEntry(
                        platform.account(PlatformAccount.PAYOUTS_IN_TRANSIT),
                        Direction.DEBIT,
                        row.amount,
                    ),
                    NewEntry(seller.ledger_account_id, Direction.CREDIT, row.amount),
                ),
                status=TransactionStatus.POSTED,
                external_id=payout_return_external_id(row.id),
                description=f"Return of instant payout {row.id} ({code}); the fee is kept",
                metadata={"kind": "payout_return", "payout_id": row.id, "code": code},
            ),
        )

    @staticmethod
    def _fail_account(conn: Connection, payout: Row[Any], code: str) -> None:
        now = utc_now()
        conn.execute(
            payout_accounts.update()
            .where(
                payout_accounts.c.seller_id == payout.seller_id,
                _same_destination(payout.account_number, payout.routing_number),
                payout_accounts.c.status == ACCOUNT_ACTIVE,
            )
            .values(
                status=ACCOUNT_FAILED,
                failure_code=code,
                failed_payout_id=payout.id,
                failed_at=now,
                updated_at=now,
            )
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
        """The payout's row, locked, and then its seller (``MarketCore.lock_seller``)."""
        row = row_by_id(conn, payouts, payout_id, for_update=True)
        if row is None:
            raise payout_not_found(payout_id)
        self.marketplace.lock_seller(conn, row.seller_id)
        return row

    @staticmethod
    def _update(conn: Connection, payout_id: str, **values: Any) -> Payout:
        row = conn.execute(
            payouts.update()
            .where(payouts.c.id == payout_id)
            .values(**values, updated_at=utc_now())
            .returning(*payouts.c)
        ).one()
        return _payout(row)


# -------------------------------------------------------------------- helpers


def _invalid(row: Row[Any], target: str) -> InvalidPayoutState:
    return InvalidPayoutState(
        f"payout {row.id!r} is {row.status}; it cannot become {target}", status=row.status
    )


def _same_payout(row: Row[Any], seller_id: str, amount: int | None, method: str) -> Payout:
    if (
        row.seller_id != seller_id
        or (amount is not None and row.amount != amount)
        or row.method != method
    ):
        raise PayoutConflict(
            f"payout {row.id!r} exists for seller {row.seller_id}, amount {row.amount}, "
            f"method {row.method}",
            payout_id=row.id,
        )
    return _payout(row)


def _payout(row: Row[Any]) -> Payout:
    return from_row(Payout, row, status=PayoutState(row.status))


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
        "method": p.method,
        "fee": p.fee,
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
