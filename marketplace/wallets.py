"""Wallets: stored value per user (consumer wallets, gift cards, promotional credit).

A wallet is a credit-normal ledger account in the platform ledger of its currency (what the
platform owes the wallet's owner). Its money is kept in **lots** (``wallet_lots``): each top-up
is one, and each transfer in is one per expiry date of the money it moved. A lot may carry an
expiry (``expires_at``); what remains of it then goes to the platform's breakage account.

The ledger transactions (``WalletSystemAccount`` are the platform's accounts for wallets):

==================  ============================================================  =========
top-up              debit ``wallet_funding``, credit the wallet                    pending
                    (``"settled": true``: posted at once); settle posts it, fail   (posted)
                    archives it
spend               debit the wallet (available must stay >= 0: a balance          posted
                    condition), credit ``wallet_spends``
refund of a spend   debit ``wallet_spends``, credit the wallet                     posted
transfer            debit the sender (available >= 0), credit the receiver:        posted
                    one transaction, both balances change at once
expiry of a lot     debit the wallet (available >= 0), credit ``wallet_breakage``   posted
==================  ============================================================  =========

**Lots and the ledger agree** because every writer of a wallet's money locks the wallet's row
first (``SELECT ... FOR UPDATE``; a transfer locks both wallets in id order), then reads and
changes its lots, then writes the ledger (whose accounts it locks in its own fixed order). So the
writers of one wallet queue on its row, and the remaining amounts of its settled lots always sum
to its posted balance. The spend's balance condition (available >= 0) is the backstop that no
writer can get around: even one that skipped the lock could not overdraw a wallet.

**Which money goes first**: spends and transfers out take from the settled lots whose expiry
comes first (lots without an expiry last; then oldest first). Money whose expiry has passed is
not spent, even before the expiry workflow took it.

**Refunds go back to the lots the spend took from**, in reverse (the latest-expiring part first),
each lot getting back at most what the spend took from it: promotional credit refunded is still
promotional credit with its expiry, so a spend and its refund cannot turn expiring money into
money that never expires. A lot whose expiry has already passed gets its money back too and is
due at once: the wallet's expiry workflow is woken and takes it to breakage.

**Transfers keep the expiry**: the receiver gets one lot per expiry date of the sender's lots
the money came from.

**Expiry clock** (Temporal keeps the time, PostgreSQL keeps the money): each wallet's expiry
workflow (``wallet-expiries/<wallet>``) sleeps until the earliest expiry it read from the
database (``expiry_timer_at`` on the wallet), then ``expire_due`` expires every lot due. A write
that makes a lot expire before that timer (a settled top-up with an expiry, an earlier expiry, a
refund into an expired lot) records a wake request on the wallet's row and notifies
``wallet_expiries`` at commit; the worker's dispatcher signals the workflow (signal-with-start)
and its sweep repeats a wake that got lost (``wallets_to_wake``). A later or removed expiry
needs no wake: the workflow's next turn finds nothing due and sleeps until the next one.

Every method takes a SQLAlchemy ``Connection`` inside a database transaction the caller owns and
never commits. Each change records its event (``wallet.*``) in the wallet's event stream
(``marketplace.events.wallet_stream``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import (
    BalanceCondition,
    BalanceConditionFailed,
    BalanceKind,
    ConditionOp,
    CurrencyMismatch,
    Direction,
    NewEntry,
    NewLedgerTransaction,
    NormalBalance,
    RunningTotals,
    TransactionStatus,
    ValidationFailed,
)
from ledger_core.ids import uuid7
from ledger_core.schema import ledger_accounts, ledgers
from marketplace import errors
from marketplace.checks import check_amount, check_amount_or_none, check_aware, check_id, utc_now
from marketplace.events import EventType, NewEvent, iso, record_events, wallet_stream
from marketplace.rows import from_row, page
from marketplace.sellers import MarketCore
from marketplace.tables import (
    platform_ledgers,
    wallet_lots,
    wallet_refunds,
    wallet_spend_lots,
    wallet_spends,
    wallet_transfers,
    wallets,
)
from marketplace.types import (
    ExpiryTurn,
    LotStatus,
    Page,
    SpentLot,
    Wallet,
    WalletBalances,
    WalletLot,
    WalletRefund,
    WalletSpend,
    WalletSystemAccount,
    WalletTransfer,
)

NOTIFY_CHANNEL = "wallet_expiries"
EXPIRE_BATCH = 200
MAX_DESCRIPTION = 5000

_AVAILABLE_STAYS_POSITIVE = (BalanceCondition(BalanceKind.AVAILABLE, ConditionOp.GTE, 0),)


def wallet_external_id(wallet_id: str) -> str:
    return f"wallet:{wallet_id}"


def new_id(prefix: str) -> str:
    """``<prefix>_`` and a UUIDv7 in hex: unique, and sortable by creation time."""
    return f"{prefix}_{uuid7().hex}"


class Wallets(MarketCore):
    """Wallets, their lots (top-ups), spends, refunds, transfers and expiries, on the shared
    core (``MarketCore``: the ledger service and the platform ledgers). Stateless."""

    # ------------------------------------------------------------ system accounts

    def wallet_system_accounts(
        self, conn: Connection, currency: str
    ) -> tuple[uuid.UUID, dict[WalletSystemAccount, uuid.UUID]]:
        """The platform ledger of ``currency`` and its wallet accounts, created on first use
        (serialised by an advisory lock per currency; created idempotently by external id).
        Read each time (one indexed query), not cached: an account created by a transaction that
        rolls back must not be remembered."""
        platform = self.platform_ledger(conn, currency)
        wanted = [role.external_id for role in WalletSystemAccount]

        def existing() -> dict[str, uuid.UUID]:
            rows = conn.execute(
                select(ledger_accounts.c.id, ledger_accounts.c.external_id).where(
                    ledger_accounts.c.ledger_id == platform.ledger_id,
                    ledger_accounts.c.external_id.in_(wanted),
                )
            ).all()
            return {r.external_id: r.id for r in rows}

        found = existing()
        if len(found) < len(wanted):
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"wallet_accounts:{currency}"},
            )
            found = existing()
        accounts: dict[WalletSystemAccount, uuid.UUID] = {}
        for role in WalletSystemAccount:
            account_id = found.get(role.external_id)
            if account_id is None:
                account_id = self.ledger.create_account(
                    conn,
                    ledger_id=platform.ledger_id,
                    name=f"Platform {role.value.replace('_', ' ')} ({currency})",
                    normal_balance=role.normal_balance,
                    external_id=role.external_id,
                    metadata={"kind": "platform", "role": role.value},
                ).id
            accounts[role] = account_id
        return platform.ledger_id, accounts

    # ------------------------------------------------------------ wallets

    def create_wallet(
        self,
        conn: Connection,
        *,
        wallet_id: str | None = None,
        owner: str,
        name: str,
        currency: str,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[Wallet, bool]:
        """Create a wallet and its credit-normal ledger account (external id
        ``wallet:<id>``); returns it and whether it was created. ``wallet_id`` None: a new
        ``wal_...`` id. The same request again returns the wallet; other attributes raise
        ``WalletExists``."""
        if wallet_id is None:
            wallet_id = new_id("wal")
        check_id(wallet_id, "id")
        if not owner.strip():
            raise ValidationFailed("owner must not be empty", field="owner")
        if not name.strip():
            raise ValidationFailed("name must not be empty", field="name")
        metadata = metadata or {}
        existing = self._wallet_row(conn, wallet_id)
        if existing is None:
            ledger_id, _ = self.wallet_system_accounts(conn, currency)
            account = self.ledger.create_account(
                conn,
                ledger_id=ledger_id,
                name=f"Wallet {wallet_id}",
                normal_balance=NormalBalance.CREDIT,
                external_id=wallet_external_id(wallet_id),
                metadata={"kind": "wallet", "wallet_id": wallet_id, "owner": owner},
            )
            now = utc_now()
            inserted = conn.execute(
                pg_insert(wallets)
                .values(
                    id=wallet_id,
                    owner=owner,
                    name=name,
                    currency=currency,
                    ledger_account_id=account.id,
                    metadata=metadata,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(wallets.c.id)
            ).one_or_none()
            if inserted is not None:
                wallet = self.get_wallet(conn, wallet_id)
                self._events(conn, [(wallet_id, EventType.WALLET_CREATED, wallet_object(wallet))])
                return wallet, True
            existing = self._wallet_row(conn, wallet_id)  # a concurrent create won
            assert existing is not None
        same = (
            existing.owner == owner
            and existing.name == name
            and existing.currency == currency
            and existing.metadata == metadata
        )
        if not same:
            raise errors.WalletExists(
                f"wallet {wallet_id!r} exists with different attributes", wallet_id=wallet_id
            )
        return _wallet(existing), False

    def get_wallet(self, conn: Connection, wallet_id: str) -> Wallet:
        row = self._wallet_row(conn, wallet_id)
        if row is None:
            raise errors.wallet_not_found(wallet_id)
        return _wallet(row)

    def list_wallets(
        self,
        conn: Connection,
        *,
        owner: str | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Wallet]:
        query = _wallet_query()
        if owner is not None:
            query = query.where(wallets.c.owner == owner)
        return page(conn, query, wallets.c.id, after, limit, _wallet)

    def wallet_balances(self, conn: Connection, wallet_id: str) -> WalletBalances:
        """The wallet account's pending, posted and available balances (running totals: O(1)),
        and what of it expires."""
        row = conn.execute(_BALANCES, {"wallet": wallet_id}).one_or_none()
        if row is None:
            raise errors.wallet_not_found(wallet_id)
        return WalletBalances(
            wallet_id=wallet_id,
            currency=row.currency,
            currency_exponent=row.currency_exponent,
            ledger_account_id=row.ledger_account_id,
            lock_version=row.lock_version,
            totals=RunningTotals(
                pending_debits=row.pending_debits,
                pending_credits=row.pending_credits,
                posted_debits=row.posted_debits,
                posted_credits=row.posted_credits,
            ),
            expiring=row.expiring,
            next_expiry_at=row.next_expiry_at,
        )

    # ------------------------------------------------------------ top-ups

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
        now = now or utc_now()
        if expires_at is not None:
            _check_expiry(expires_at, now)
        wallet = self._lock_wallet(conn, wallet_id)
        ledger_id, accounts = self.wallet_system_accounts(conn, wallet.currency)
        lot_id = new_id("wtu")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
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
        lot = _lot(row)
        if settled and expires_at is not None:
            self._request_wake(conn, wallet_id, expires_at)
        kind = EventType.WALLET_TOP_UP_SETTLED if settled else EventType.WALLET_TOP_UP_PENDING
        self._events(conn, [(wallet_id, kind, self._with_balances(conn, wallet_id, lot))])
        return lot

    def settle_top_up(self, conn: Connection, wallet_id: str, top_up_id: str) -> WalletLot:
        """The top-up's funding arrived: post it (its money is available). Settling a settled
        top-up returns it as it is; a failed one raises ``TopUpNotPending``."""
        self._lock_wallet(conn, wallet_id)
        lot = self._top_up(conn, wallet_id, top_up_id)
        if lot.status is LotStatus.SETTLED or lot.status is LotStatus.EXPIRED:
            return lot
        if lot.status is not LotStatus.PENDING:
            raise errors.TopUpNotPending(
                f"top-up {top_up_id!r} is {lot.status}; only a pending top-up settles",
                status=str(lot.status),
            )
        self.ledger.post_transaction(conn, lot.ledger_transaction_id)
        now = utc_now()
        lot = self._update_lot(conn, top_up_id, status=str(LotStatus.SETTLED), settled_at=now)
        if lot.expires_at is not None:
            self._request_wake(conn, wallet_id, lot.expires_at)
        self._events(
            conn,
            [
                (
                    wallet_id,
                    EventType.WALLET_TOP_UP_SETTLED,
                    self._with_balances(conn, wallet_id, lot),
                )
            ],
        )
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
        self._events(
            conn,
            [
                (
                    wallet_id,
                    EventType.WALLET_TOP_UP_FAILED,
                    self._with_balances(conn, wallet_id, lot),
                )
            ],
        )
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
        now = now or utc_now()
        if expires_at is not None:
            _check_expiry(expires_at, now)
        self._lock_wallet(conn, wallet_id)
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
        return page(conn, query, wallet_lots.c.id, after, limit, _lot)

    # ------------------------------------------------------------ spends and refunds

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
        _check_description(description)
        now = now or utc_now()
        wallet = self._lock_wallet(conn, wallet_id)
        taken = self._take(conn, wallet, amount, now)
        ledger_id, accounts = self.wallet_system_accounts(conn, wallet.currency)
        spend_id = new_id("wsp")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
                entries=(
                    NewEntry(
                        wallet.ledger_account_id,
                        Direction.DEBIT,
                        amount,
                        conditions=_AVAILABLE_STAYS_POSITIVE,
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
        self._events(
            conn,
            [(wallet_id, EventType.WALLET_SPENT, self._with_balances(conn, wallet_id, spend))],
        )
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
        the latest-expiring first (see the module's docstring)."""
        check_amount_or_none(amount)
        now = now or utc_now()
        wallet = self._lock_wallet(conn, wallet_id)
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
        ledger_id, accounts = self.wallet_system_accounts(conn, wallet.currency)
        refund_id = new_id("wrf")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
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
        self._events(
            conn,
            [
                (
                    wallet_id,
                    EventType.WALLET_SPEND_REFUNDED,
                    self._with_balances(conn, wallet_id, refund),
                )
            ],
        )
        return refund

    # ------------------------------------------------------------ transfers

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
        _check_description(description)
        if from_wallet_id == to_wallet_id:
            raise ValidationFailed("a transfer needs two different wallets", field="to_wallet_id")
        now = now or utc_now()
        # Both wallets locked, in id order (no lock cycle between opposite transfers).
        locked = {w: self._lock_wallet(conn, w) for w in sorted((from_wallet_id, to_wallet_id))}
        sender, receiver = locked[from_wallet_id], locked[to_wallet_id]
        if sender.currency != receiver.currency:
            raise CurrencyMismatch(
                f"wallet {from_wallet_id!r} is in {sender.currency} and wallet {to_wallet_id!r} "
                f"in {receiver.currency}; transfers are within one currency",
                from_currency=sender.currency,
                to_currency=receiver.currency,
            )
        taken = self._take(conn, sender, amount, now)
        ledger_id, _ = self.wallet_system_accounts(conn, sender.currency)
        transfer_id = new_id("wtr")
        txn = self.ledger.create_transaction(
            conn,
            NewLedgerTransaction(
                ledger_id=ledger_id,
                entries=(
                    NewEntry(
                        sender.ledger_account_id,
                        Direction.DEBIT,
                        amount,
                        conditions=_AVAILABLE_STAYS_POSITIVE,
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

    # ------------------------------------------------------------ expiries

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
            ledger_id, accounts = self.wallet_system_accounts(conn, wallet.currency)
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
                                conditions=_AVAILABLE_STAYS_POSITIVE,
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
            expired_lots=len(due), expired_amount=expired_amount, more=more, timer_at=timer_at
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

    # ------------------------------------------------------------ internals

    def _lock_wallet(self, conn: Connection, wallet_id: str) -> Row[Any]:
        """Lock the wallet's row until the transaction ends: every writer of a wallet's money
        takes it first (the module's docstring). ``WalletNotFound`` if there is none."""
        row = conn.execute(
            select(wallets).where(wallets.c.id == wallet_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise errors.wallet_not_found(wallet_id)
        return row

    @staticmethod
    def _wallet_row(conn: Connection, wallet_id: str) -> Row[Any] | None:
        return conn.execute(_wallet_query().where(wallets.c.id == wallet_id)).one_or_none()

    def _top_up(self, conn: Connection, wallet_id: str, top_up_id: str) -> WalletLot:
        row = conn.execute(
            select(wallet_lots).where(
                wallet_lots.c.id == top_up_id, wallet_lots.c.wallet_id == wallet_id
            )
        ).one_or_none()
        if row is None:
            self.get_wallet(conn, wallet_id)
            raise errors.top_up_not_found(top_up_id)
        return _lot(row)

    @staticmethod
    def _update_lot(conn: Connection, lot_id: str, **values: Any) -> WalletLot:
        row = conn.execute(
            wallet_lots.update()
            .where(wallet_lots.c.id == lot_id)
            .values(**values, updated_at=utc_now())
            .returning(*wallet_lots.c)
        ).one()
        return _lot(row)

    def _take(
        self, conn: Connection, wallet: Row[Any], amount: int, now: datetime
    ) -> list[tuple[str, int, datetime | None]]:
        """Take ``amount`` from the wallet's spendable lots (under the wallet's lock), the
        soonest expiry first; (lot id, amount taken, its expiry) in that order."""
        lots = conn.execute(_SPENDABLE, {"wallet": wallet.id, "now": now}).all()
        spendable = sum(lot.remaining for lot in lots)
        if spendable < amount:
            raise BalanceConditionFailed(
                f"wallet {wallet.id!r} has {spendable} to spend, less than {amount}",
                available=spendable,
                account_id=str(wallet.ledger_account_id),
            )
        taken: list[tuple[str, int, datetime | None]] = []
        due = amount
        for lot in lots:
            n = min(due, lot.remaining)
            taken.append((lot.id, n, lot.expires_at))
            due -= n
            if due == 0:
                break
        conn.execute(
            _TAKE_FROM_LOTS,
            {"ids": [t[0] for t in taken], "amounts": [t[1] for t in taken], "now": now},
        )
        return taken

    def _request_wake(self, conn: Connection, wallet_id: str, due: datetime) -> None:
        """A lot of the wallet is due at ``due``: if the expiry workflow would look later (or
        has no timer) and no earlier wake is asked for, ask for one and notify the dispatcher
        at commit. Called under the wallet's lock."""
        conn.execute(_REQUEST_WAKE, {"wallet": wallet_id, "due": due})

    def _spend(self, conn: Connection, row: Row[Any]) -> WalletSpend:
        lots = conn.execute(_SPEND_LOTS, {"spend": row.id}).all()
        return from_row(
            WalletSpend,
            row,
            lots=tuple(SpentLot(r.lot_id, r.amount, r.refunded, r.expires_at) for r in lots),
        )

    def _with_balances(self, conn: Connection, wallet_id: str, obj: Any) -> dict[str, Any]:
        """An event's data: the object and the wallet's balances after the change."""
        return {
            "object": wallet_event_object(obj),
            "balances": balances_object(self.wallet_balances(conn, wallet_id)),
        }

    @staticmethod
    def _events(conn: Connection, new: Sequence[tuple[str, EventType, dict[str, Any]]]) -> None:
        record_events(conn, [NewEvent(wallet_stream(w), t, d) for w, t, d in new])


# -------------------------------------------------------------------- SQL

# Credit-normal wallet accounts; what of the wallet expires, from its settled lots.
_BALANCES = text(
    """
SELECT w.currency, l.currency_exponent, w.ledger_account_id, a.pending_debits, a.pending_credits,
       a.posted_debits, a.posted_credits, a.lock_version,
       coalesce(x.expiring, 0) AS expiring, x.next_expiry_at
  FROM wallets w
  JOIN ledger_accounts a ON a.id = w.ledger_account_id
  JOIN ledgers l ON l.id = a.ledger_id
  LEFT JOIN LATERAL (
      SELECT sum(remaining) AS expiring, min(expires_at) AS next_expiry_at
        FROM wallet_lots
       WHERE wallet_id = w.id AND status = 'settled' AND remaining > 0
         AND expires_at IS NOT NULL
  ) x ON true
 WHERE w.id = :wallet
"""
)

# What a spend or a transfer out may take, in the order it takes it.
_SPENDABLE = text(
    """
SELECT id, remaining, expires_at FROM wallet_lots
 WHERE wallet_id = :wallet AND status = 'settled' AND remaining > 0
   AND (expires_at IS NULL OR expires_at > :now)
 ORDER BY expires_at NULLS LAST, created_at, id
"""
)

_TAKE_FROM_LOTS = text(
    """
UPDATE wallet_lots l SET remaining = l.remaining - t.amount, updated_at = :now
  FROM unnest(CAST(:ids AS text[]), CAST(:amounts AS bigint[])) AS t(id, amount)
 WHERE l.id = t.id
"""
)

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

_NEXT_EXPIRY = text(
    """
SELECT min(expires_at) FROM wallet_lots
 WHERE wallet_id = :wallet AND status = 'settled' AND remaining > 0 AND expires_at IS NOT NULL
"""
)

_REQUEST_WAKE = text(
    f"""
WITH asked AS (
    UPDATE wallets
       SET expiry_wake_requested_at = :due, expiry_wake_requested_on = now()
     WHERE id = :wallet
       AND (expiry_timer_at IS NULL OR expiry_timer_at > :due)
       AND (expiry_wake_requested_at IS NULL OR expiry_wake_requested_at > :due)
    RETURNING id
)
SELECT pg_notify('{NOTIFY_CHANNEL}', id) FROM asked
"""  # noqa: S608 (a constant channel name)
)

_TO_WAKE = text(
    """
SELECT id FROM wallets
 WHERE (expiry_wake_requested_on < now() - CAST(:grace AS interval)
        OR expiry_timer_at < now() - CAST(:grace AS interval))
   AND id LIKE :prefix
 ORDER BY id
 LIMIT :limit
"""
)


# -------------------------------------------------------------------- objects


def _wallet_query() -> Select[Any]:
    return (
        select(wallets, ledgers.c.id.label("ledger_id"), ledgers.c.currency_exponent)
        .join(platform_ledgers, platform_ledgers.c.currency == wallets.c.currency)
        .join(ledgers, ledgers.c.id == platform_ledgers.c.ledger_id)
    )


def _wallet(row: Row[Any]) -> Wallet:
    return from_row(Wallet, row)


def _lot(row: Row[Any]) -> WalletLot:
    return from_row(WalletLot, row, status=LotStatus(row.status))


def _check_expiry(expires_at: datetime, now: datetime) -> None:
    check_aware(expires_at, "expires_at")
    if expires_at <= now:
        raise ValidationFailed("expires_at must be in the future", field="expires_at")


def _check_description(description: str) -> None:
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ValidationFailed(
            f"description must be text of at most {MAX_DESCRIPTION} characters",
            field="description",
        )


def wallet_object(w: Wallet) -> dict[str, Any]:
    return {
        "object": "wallet",
        "id": w.id,
        "owner": w.owner,
        "name": w.name,
        "currency": w.currency,
        "ledger_account_id": str(w.ledger_account_id),
        "metadata": w.metadata,
    }


def lot_object(lot: WalletLot) -> dict[str, Any]:
    return {
        "object": "wallet_top_up" if lot.kind == "top_up" else "wallet_lot",
        "id": lot.id,
        "wallet_id": lot.wallet_id,
        "kind": lot.kind,
        "amount": lot.amount,
        "remaining": lot.remaining,
        "expired_amount": lot.expired_amount,
        "status": str(lot.status),
        "expires_at": iso(lot.expires_at),
        "transfer_id": lot.transfer_id,
        "ledger_transaction_id": str(lot.ledger_transaction_id),
        "metadata": lot.metadata,
    }


def balances_object(b: WalletBalances) -> dict[str, Any]:
    return {
        "currency": b.currency,
        "pending": b.pending,
        "posted": b.posted,
        "available": b.available,
    }


def wallet_event_object(obj: Any) -> dict[str, Any]:
    """A wallet's top-up, spend, refund or transfer as its event shows it."""
    if isinstance(obj, WalletLot):
        return lot_object(obj)
    if isinstance(obj, WalletSpend):
        return {
            "object": "wallet_spend",
            "id": obj.id,
            "wallet_id": obj.wallet_id,
            "amount": obj.amount,
            "refunded_amount": obj.refunded_amount,
            "description": obj.description,
            "ledger_transaction_id": str(obj.ledger_transaction_id),
            "lots": [{"lot_id": s.lot_id, "amount": s.amount} for s in obj.lots],
            "metadata": obj.metadata,
        }
    if isinstance(obj, WalletRefund):
        return {
            "object": "wallet_refund",
            "id": obj.id,
            "spend_id": obj.spend_id,
            "wallet_id": obj.wallet_id,
            "amount": obj.amount,
            "spend_refunded_amount": obj.spend_refunded_amount,
            "ledger_transaction_id": str(obj.ledger_transaction_id),
            "metadata": obj.metadata,
        }
    if isinstance(obj, WalletTransfer):
        return {
            "object": "wallet_transfer",
            "id": obj.id,
            "from_wallet_id": obj.from_wallet_id,
            "to_wallet_id": obj.to_wallet_id,
            "currency": obj.currency,
            "amount": obj.amount,
            "description": obj.description,
            "ledger_transaction_id": str(obj.ledger_transaction_id),
            "metadata": obj.metadata,
        }
    raise TypeError(f"no event object for {type(obj).__name__}")
