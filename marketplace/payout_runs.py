"""Scheduled payout runs: what each firing of a seller's payout schedule decided (a payout of the
available balance, or a skip and why), and "what would be paid now".

The decision, for a seller and a minimum amount (minor units):

* no payout account                    -> skipped ``no_payout_account``
* the payout account failed            -> skipped ``payout_account_failed`` (a payout to it failed
                                          because of the destination; a new account clears it)
* available < 0                        -> skipped ``negative_balance`` (a refund or chargeback
                                          took more than was left; future earnings cover it)
* available == 0                       -> skipped ``nothing_available``
* available < minimum                  -> skipped ``below_minimum``
* otherwise                            -> started: a payout of the whole available balance,
                                          reserved in the same database transaction

A run is recorded once per run id (``<seller>:<scheduled time>``): deciding again returns the
first decision, so a retried activity never starts two payouts for one firing. The caller owns
the database transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import BalanceConditionFailed, ValidationFailed
from marketplace.errors import PayoutAccountFailed, PayoutAccountMissing
from marketplace.payout_accounts import ACCOUNT_FAILED
from marketplace.payouts import Payouts
from marketplace.rows import from_row, row_by_id
from marketplace.service import Marketplace
from marketplace.tables import payout_accounts, payout_runs

STARTED = "started"
SKIPPED = "skipped"
NO_PAYOUT_ACCOUNT = "no_payout_account"
PAYOUT_ACCOUNT_FAILED = "payout_account_failed"
NEGATIVE_BALANCE = "negative_balance"
NOTHING_AVAILABLE = "nothing_available"
BELOW_MINIMUM = "below_minimum"
MAX_LIST = 100
# Previews and reservations a decision tries while the balance moves under it.
RESERVE_TRIES = 5


@dataclass(frozen=True, slots=True)
class PayoutPreview:
    """What a run would do now: pay ``amount`` (> 0), or nothing (``amount`` 0) for ``reason``."""

    seller_id: str
    currency: str
    available: int
    minimum_amount: int
    amount: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class PayoutRun:
    id: str
    seller_id: str
    scheduled_at: datetime
    outcome: str
    """started | skipped"""
    payout_id: str | None
    amount: int | None
    """Minor units paid out (started)."""
    reason: str | None
    created_at: datetime


def run_payout_id(run_id: str) -> str:
    """The payout a run starts: derived from the run id, so the same firing always names the
    same payout (and the payout workflow's id dedupes a second start)."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:24]
    return f"po_sched_{digest}"


def payout_account_status(conn: Connection, seller_id: str) -> str | None:
    """``active`` or ``failed``; None: the seller has no payout account."""
    status: str | None = conn.execute(
        select(payout_accounts.c.status).where(payout_accounts.c.seller_id == seller_id)
    ).scalar()
    return status


def payout_preview(
    conn: Connection, market: Marketplace, seller_id: str, minimum_amount: int
) -> PayoutPreview:
    """The amount a run would pay now and, when nothing, why (raises ``SellerNotFound``)."""
    if isinstance(minimum_amount, bool) or not isinstance(minimum_amount, int):
        raise ValidationFailed("minimum_amount must be an integer >= 0", field="minimum_amount")
    if minimum_amount < 0:
        raise ValidationFailed("minimum_amount must be an integer >= 0", field="minimum_amount")
    balances = market.seller_balances(conn, seller_id)
    available = balances.available
    reason: str | None = None
    account_status = payout_account_status(conn, seller_id)
    if account_status is None:
        reason = NO_PAYOUT_ACCOUNT
    elif account_status == ACCOUNT_FAILED:
        reason = PAYOUT_ACCOUNT_FAILED
    elif available < 0:
        reason = NEGATIVE_BALANCE
    elif available == 0:
        reason = NOTHING_AVAILABLE
    elif available < minimum_amount:
        reason = BELOW_MINIMUM
    return PayoutPreview(
        seller_id=seller_id,
        currency=balances.currency,
        available=available,
        minimum_amount=minimum_amount,
        amount=0 if reason else available,
        reason=reason,
    )


def decide_payout_run(
    conn: Connection,
    market: Marketplace,
    *,
    run_id: str,
    seller_id: str,
    scheduled_at: datetime,
    minimum_amount: int,
) -> tuple[PayoutRun, PayoutPreview | None]:
    """Decide and record the run ``run_id`` (the first decision wins: asked again, the recorded
    run comes back with no preview). Serialised per run id by the primary key."""
    existing = get_payout_run(conn, run_id)
    if existing is not None:
        return existing, None
    # Two attempts at one firing (an activity retried while the first still runs) decide once.
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"payout-run:{run_id}"},
    )
    existing = get_payout_run(conn, run_id)
    if existing is not None:
        return existing, None
    preview = _reserve(conn, market, run_id, seller_id, minimum_amount)
    values: dict[str, Any] = {
        "id": run_id,
        "seller_id": seller_id,
        "scheduled_at": scheduled_at,
        "created_at": func.now(),
    }
    if preview.reason is None:
        values.update(outcome=STARTED, payout_id=run_payout_id(run_id), amount=preview.amount)
    else:
        values.update(outcome=SKIPPED, reason=preview.reason)
    conn.execute(pg_insert(payout_runs).values(**values).on_conflict_do_nothing())
    run = get_payout_run(conn, run_id)
    assert run is not None
    return run, preview


def _reserve(
    conn: Connection, market: Marketplace, run_id: str, seller_id: str, minimum_amount: int
) -> PayoutPreview:
    """Decide and, to start, reserve the payout in this transaction: a run recorded as
    ``started`` always has its payout's money reserved (the payout workflow then finds the
    reservation by the payout id). The balance may move between the preview and the reservation
    (a refund, a chargeback committing meanwhile): then look again."""
    payouts = Payouts(market)
    for _ in range(RESERVE_TRIES):
        preview = payout_preview(conn, market, seller_id, minimum_amount)
        if preview.reason is not None:
            return preview
        try:
            with conn.begin_nested():
                payouts.reserve_payout(
                    conn,
                    payout_id=run_payout_id(run_id),
                    seller_id=seller_id,
                    amount=preview.amount,
                    origin="scheduled",
                    run_id=run_id,
                )
        except (BalanceConditionFailed, PayoutAccountMissing, PayoutAccountFailed):
            continue
        return preview
    # The balance kept moving: the activity's retry decides again from scratch.
    raise RuntimeError(f"payout run {run_id}: the available balance kept changing")


def get_payout_run(conn: Connection, run_id: str) -> PayoutRun | None:
    row = row_by_id(conn, payout_runs, run_id)
    return None if row is None else _run(row)


def list_payout_runs(conn: Connection, seller_id: str, *, limit: int = 20) -> list[PayoutRun]:
    """The seller's most recent runs, newest first."""
    limit = max(1, min(limit, MAX_LIST))
    rows = conn.execute(
        select(payout_runs)
        .where(payout_runs.c.seller_id == seller_id)
        .order_by(payout_runs.c.scheduled_at.desc(), payout_runs.c.id.desc())
        .limit(limit)
    ).all()
    return [_run(r) for r in rows]


def _run(row: Row[Any]) -> PayoutRun:
    return from_row(PayoutRun, row)
