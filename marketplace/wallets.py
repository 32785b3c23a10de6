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
database (``expiry_timer_at`` on the wallet), then ``expire_due`` (``marketplace.wallet_expiries``)
expires every lot due. A write that makes a lot expire before that timer (a settled top-up with
an expiry, an earlier expiry, a refund into an expired lot) records a wake request on the
wallet's row and notifies ``wallet_expiries`` (``NOTIFY_CHANNEL``) at commit; the worker's
dispatcher signals the workflow (signal-with-start) and its sweep repeats a wake that got lost
(``wallets_to_wake``). A later or removed expiry needs no wake: the workflow's next turn finds
nothing due and sleeps until the next one.

This module is the wallets' core, ``WalletCore`` (on the marketplace's ``MarketCore``): the
platform's wallet accounts, creating, reading and listing wallets, their balances, the wallet's
row lock, taking money from lots, wake requests, and the row mappers and event objects every
wallet module shares. One module per kind of money movement builds on it:
``marketplace.wallet_top_ups`` (top-ups, settling or failing them, a lot's expiry),
``marketplace.wallet_spends`` (spends and their refunds), ``marketplace.wallet_transfers`` and
``marketplace.wallet_expiries`` (the expiry workflow's turn, its clock, the sweep's wakes);
``marketplace.service.Wallets`` is all of them on one core, and ``Marketplace`` inherits it.

Every method takes a SQLAlchemy ``Connection`` inside a database transaction the caller owns and
never commits. Each change records its event (``wallet.*``) in the wallet's event stream
(``marketplace.events.wallet_stream``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import (
    BalanceCondition,
    BalanceConditionFailed,
    BalanceKind,
    ConditionOp,
    NormalBalance,
    RunningTotals,
    ValidationFailed,
)
from ledger_core.ids import uuid7
from ledger_core.schema import ledger_accounts, ledgers
from marketplace import errors
from marketplace.checks import check_id, utc_now
from marketplace.events import EventType, NewEvent, iso, record_events, wallet_stream
from marketplace.rows import from_row, page
from marketplace.sellers import MarketCore, check_test_clock
from marketplace.tables import platform_ledgers, test_clocks, wallet_lots, wallets
from marketplace.types import (
    LotStatus,
    Page,
    Wallet,
    WalletBalances,
    WalletLot,
    WalletRefund,
    WalletSpend,
    WalletSystemAccount,
    WalletTransfer,
)

NOTIFY_CHANNEL = "wallet_expiries"
MAX_DESCRIPTION = 5000

AVAILABLE_STAYS_POSITIVE = (BalanceCondition(BalanceKind.AVAILABLE, ConditionOp.GTE, 0),)


def wallet_external_id(wallet_id: str) -> str:
    return f"wallet:{wallet_id}"


def new_id(prefix: str) -> str:
    """``<prefix>_`` and a UUIDv7 in hex: unique, and sortable by creation time."""
    return f"{prefix}_{uuid7().hex}"


class WalletCore(MarketCore):
    """What every wallet module builds on, on the shared core (``MarketCore``: the ledger service
    and the platform ledgers): the wallets' system accounts, wallets and their balances, the
    wallet's lock and the helpers its writers share. Stateless."""

    # ------------------------------------------------------------ system accounts

    def wallet_system_accounts(
        self, conn: Connection, currency: str, *, livemode: bool
    ) -> tuple[uuid.UUID, dict[WalletSystemAccount, uuid.UUID]]:
        """The platform ledger of ``currency`` in a mode and its wallet accounts, created on
        first use (serialised by an advisory lock per currency and mode; created idempotently by
        external id). Read each time (one indexed query), not cached: an account created by a
        transaction that rolls back must not be remembered."""
        platform = self.platform_ledger(conn, currency, livemode=livemode)
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
                {"key": f"wallet_accounts:{currency}" + ("" if livemode else ":test")},
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
        livemode: bool = True,
        test_clock_id: str | None = None,
    ) -> tuple[Wallet, bool]:
        """Create a wallet and its credit-normal ledger account (external id
        ``wallet:<id>``) in the platform ledger of its currency and mode (``livemode`` False:
        test mode); returns it and whether it was created. ``wallet_id`` None: a new
        ``wal_...`` id. The same request again returns the wallet; other attributes raise
        ``WalletExists``, and so does an id taken in the other mode. ``test_clock_id``: the wallet
        lives on that test clock's time (``test_clock_not_found`` if there is none; test mode
        only)."""
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
            check_test_clock(conn, test_clock_id, livemode=livemode)
            ledger_id, _ = self.wallet_system_accounts(conn, currency, livemode=livemode)
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
                    test_clock_id=test_clock_id,
                    metadata=metadata,
                    created_at=now,
                    updated_at=now,
                    livemode=livemode,
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
            and existing.livemode == livemode
            and existing.test_clock_id == test_clock_id
        )
        if not same:
            raise errors.WalletExists(
                f"wallet {wallet_id!r} exists with different attributes", wallet_id=wallet_id
            )
        return _wallet(existing), False

    def get_wallet(
        self, conn: Connection, wallet_id: str, *, livemode: bool | None = None
    ) -> Wallet:
        """The wallet; with ``livemode``, a wallet of the other mode is not found either."""
        row = self._wallet_row(conn, wallet_id)
        if row is None or (livemode is not None and row.livemode != livemode):
            raise errors.wallet_not_found(wallet_id)
        return _wallet(row)

    def list_wallets(
        self,
        conn: Connection,
        *,
        owner: str | None = None,
        livemode: bool | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> Page[Wallet]:
        query = _wallet_query()
        if livemode is not None:
            query = query.where(wallets.c.livemode == livemode)
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

    def wallet_now(
        self, conn: Connection, wallet: Row[Any], default: datetime | None = None
    ) -> datetime:
        """The wallet's now (``wallet`` its row, as ``_lock_wallet`` gives it): its test
        clock's time (``marketplace.test_clocks``), else ``default`` or the wall clock's. The
        one place a wallet's now is resolved."""
        if wallet.test_clock_id is not None:
            frozen: datetime = conn.execute(
                select(test_clocks.c.frozen_time).where(test_clocks.c.id == wallet.test_clock_id)
            ).scalar_one()
            return frozen
        return default or utc_now()

    @staticmethod
    def _wallet_row(conn: Connection, wallet_id: str) -> Row[Any] | None:
        return conn.execute(_wallet_query().where(wallets.c.id == wallet_id)).one_or_none()

    @staticmethod
    def _update_lot(conn: Connection, lot_id: str, **values: Any) -> WalletLot:
        row = conn.execute(
            wallet_lots.update()
            .where(wallet_lots.c.id == lot_id)
            .values(**values, updated_at=utc_now())
            .returning(*wallet_lots.c)
        ).one()
        return lot_from_row(row)

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

    def _with_balances(self, conn: Connection, wallet_id: str, obj: Any) -> dict[str, Any]:
        """An event's data: the object and the wallet's balances after the change."""
        return {
            "object": wallet_event_object(obj),
            "balances": balances_object(self.wallet_balances(conn, wallet_id)),
        }

    @staticmethod
    def _events(conn: Connection, new: Sequence[tuple[str, EventType, dict[str, Any]]]) -> None:
        record_events(conn, [NewEvent(wallet_stream(w), t, d) for w, t, d in new])

    def _event(self, conn: Connection, wallet_id: str, type: EventType, obj: Any) -> None:
        """One event of the wallet: the object and its balances after the change."""
        self._events(conn, [(wallet_id, type, self._with_balances(conn, wallet_id, obj))])


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


# -------------------------------------------------------------------- objects


def _wallet_query() -> Select[Any]:
    return (
        select(wallets, ledgers.c.id.label("ledger_id"), ledgers.c.currency_exponent)
        .join(
            platform_ledgers,
            (platform_ledgers.c.currency == wallets.c.currency)
            & (platform_ledgers.c.livemode == wallets.c.livemode),
        )
        .join(ledgers, ledgers.c.id == platform_ledgers.c.ledger_id)
    )


def _wallet(row: Row[Any]) -> Wallet:
    return from_row(Wallet, row)


def lot_from_row(row: Row[Any]) -> WalletLot:
    return from_row(WalletLot, row, status=LotStatus(row.status))


def check_description(description: str) -> None:
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
