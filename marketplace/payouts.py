"""Payouts on the marketplace's ledger (DESIGN.md, "The seller's money", 4); refunds are
``marketplace.refunds``.

``Payouts`` takes a ``Marketplace``; like it, every method takes a ``Connection`` inside a
database transaction the caller owns, never commits, and is idempotent by a key. It is built on
``PayoutAccounts`` (``marketplace.payout_accounts``: ``set_payout_account`` /
``get_payout_account``, an account's ``active`` or ``failed`` status); an instant payout's amount,
fee and daily limit are reckoned in ``marketplace.instant``. The payout life cycle, keyed by the
payout id (ledger key ``payout:<id>``):

======================  ===============================================================
``reserve_payout``      pending debit seller -> payouts_in_transit, written only if the
                        seller's available balance stays >= 0 -> ``pending``; an instant
                        payout's fee in the same transaction (``marketplace.instant``); a
                        seller without an account, or whose account failed, is not paid;
                        its items, what it pays out (``marketplace.payout_items``), fixed in
                        the same transaction
``begin_submission``    marks that the rail is about to be called (a cancel is refused
                        from then on, so a payout the rail may have is never archived)
``mark_submitted``      the rail accepted it -> ``processing``
``mark_paid``           post the debit -> ``paid``
``mark_failed``         archive the debit (money available again), release its items ->
                        ``failed``; a failure of the destination also marks the payout
                        account failed, in the same transaction
``mark_returned``       reverse the posted debit (``payout:<id>:return``) -> ``returned``;
                        an instant payout's fee is kept (the rail did pay it out); its items
                        stay, the return's credit is an item of a later payout
``cancel_payout``       before submission only: archive, release its items -> ``cancelled``
======================  ===============================================================

Asking for the state a payout is already in is a no-op; an impossible move raises
``InvalidPayoutState``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
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
    InstantNotSupported,
    InvalidPayoutState,
    NothingToPay,
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
    instant_amount,
    instant_availability,
    uncount_instant_payout,
)
from marketplace.payout_accounts import PayoutAccounts
from marketplace.payout_items import items_link, payout_lines, release_items, write_items
from marketplace.rows import from_row, page, row_by_id
from marketplace.service import Marketplace
from marketplace.tables import payouts, sellers
from marketplace.types import (
    Page,
    Payout,
    PayoutAccount,
    PayoutState,
    PlatformAccount,
    Seller,
    SellerBalances,
)


def payout_external_id(payout_id: str) -> str:
    return f"payout:{payout_id}"


def payout_return_external_id(payout_id: str) -> str:
    return f"payout:{payout_id}:return"


_SUBMITTED_OR_LATER = {PayoutState.PROCESSING, PayoutState.PAID, PayoutState.RETURNED}


class Payouts(PayoutAccounts):
    """Payout accounts (``PayoutAccounts``) and payouts of a ``Marketplace``. Stateless;
    ``instant`` is the platform's terms for instant payouts (fee, daily limit)."""

    def __init__(
        self, marketplace: Marketplace | None = None, instant: InstantTerms | None = None
    ) -> None:
        super().__init__(marketplace)
        self.instant = instant or InstantTerms()

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
        account = self._payable_account(conn, seller_id)
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
            amount, fee = instant_amount(conn, self.instant, seller_id, amount, available, now)
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
        platform = self.marketplace.platform_ledger(conn, seller.currency, livemode=seller.livemode)
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
        # The lines it pays out, read now that the debit is written: its ledger account lock keeps
        # every other writer of the seller's account out until this transaction ends.
        lines = payout_lines(
            conn,
            seller_id=seller_id,
            account_id=seller.ledger_account_id,
            own_transaction_id=txn.id,
            amount=amount,
            fee=fee,
            available_after=self.marketplace.seller_balances(conn, seller_id).available,
            now=now,
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
                item_count=len(lines),
                created_at=now,
                updated_at=now,
            )
            .returning(*payouts.c)
        ).one()
        write_items(conn, payout_id, seller_id, lines, now)
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
        livemode: bool | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Payout]:
        """Payouts by id, optionally of one seller, in one status, of sellers of one mode."""
        check_limit(limit)
        query = select(payouts)
        if livemode is not None:
            query = query.join(sellers, sellers.c.id == payouts.c.seller_id).where(
                sellers.c.livemode == livemode
            )
        if seller_id is not None:
            query = query.where(payouts.c.seller_id == seller_id)
        if status is not None:
            try:
                state = PayoutState(status)
            except ValueError:
                raise ValidationFailed("unknown payout status", field="status") from None
            query = query.where(payouts.c.status == str(state))
        return page(conn, query, payouts.c.id, after, limit, _payout)

    def payout_livemode(self, conn: Connection, payout_id: str) -> bool:
        """The payout's mode: its seller's (False: a test-mode payout, for the simulated bank)."""
        seller_id = conn.execute(
            select(payouts.c.seller_id).where(payouts.c.id == payout_id)
        ).scalar_one_or_none()
        if seller_id is None:
            raise payout_not_found(payout_id)
        return self.marketplace.seller_livemode(conn, seller_id)

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
            # Posting the reserved debit moves posted, not available: no balance event. The
            # event links to what the payout paid for (an itemized payout's lines).
            links = items_link(paid) if paid.item_count is not None else {}
            return self._event(conn, paid, EventType.PAYOUT_PAID, balance=False, **links)
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
            uncount_instant_payout(conn, row)
            now = utc_now()
            release_items(conn, payout_id, now)
            failed = self._update(
                conn,
                payout_id,
                status=str(PayoutState.FAILED),
                failed_at=now,
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
            uncount_instant_payout(conn, row)
            now = utc_now()
            release_items(conn, payout_id, now)
            cancelled = self._update(
                conn, payout_id, status=str(PayoutState.CANCELLED), cancelled_at=now
            )
            return self._event(conn, cancelled, EventType.PAYOUT_CANCELLED)
        if row.status == PayoutState.CANCELLED:
            return _payout(row)
        raise InvalidPayoutState(
            f"payout {payout_id!r} was already submitted to the rail ({row.status}); only a "
            "payout not yet submitted is cancelled",
            status=row.status,
        )

    def _return_keeping_fee(self, conn: Connection, row: Row[Any], code: str) -> Any:
        """A returned instant payout: the amount comes back to the seller (debit payouts in
        transit, credit the seller), the fee stays with the platform: the real-time rail paid the
        money out to the destination the seller gave."""
        seller = self.marketplace.get_seller(conn, row.seller_id)
        platform = self.marketplace.platform_ledger(conn, seller.currency, livemode=seller.livemode)
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

    def _event(
        self,
        conn: Connection,
        payout: Payout,
        type: EventType,
        *,
        balance: bool = True,
        **data: Any,
    ) -> Payout:
        """Record the payout's event (marketplace.events; ``data`` beside its object) and, if
        its money moved in or out of available, the seller's balance event."""
        record_event(conn, payout.seller_id, type, {"object": payout_object(payout), **data})
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
