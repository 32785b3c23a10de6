"""The wallet expiry workflow on the time-skipping test server, with the real activity and the
worker's dispatcher against the real database: top-ups that expire in days expire in
milliseconds, the soonest-expiring money is spent first and only what is left of it goes to
breakage, an operator's extension or cancellation moves or removes an expiry, and a refund into
money whose expiry passed sends it to breakage at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import Engine, text
from temporalio.api.enums.v1 import EventType

from contracts.wallets import wallet_expiries_workflow_id
from marketplace import Marketplace, WalletLot
from temporal_calls.wallets import get_wallet_expiry_state
from tests.helpers import eventually, ledger_transaction_count
from tests.temporal_env import SkippingEnv, running_worker


def balance(engine: Engine, marketplace: Marketplace, wallet: str) -> tuple[int, int, int]:
    with engine.begin() as conn:
        b = marketplace.wallet_balances(conn, wallet)
    return (b.pending, b.posted, b.available)


def lot(engine: Engine, marketplace: Marketplace, wallet: str, lot_id: str) -> WalletLot:
    with engine.begin() as conn:
        return marketplace.get_top_up(conn, wallet, lot_id)


def breakage(engine: Engine, wallet: str) -> int:
    """What went from the wallet to breakage (its posted expiry transactions)."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e "
                    "JOIN ledger_transactions t ON t.id = e.transaction_id "
                    "JOIN ledger_accounts a ON a.id = e.account_id "
                    "WHERE t.status = 'posted' AND t.metadata ->> 'kind' = 'wallet_expiry' "
                    "AND t.metadata ->> 'wallet_id' = :w "
                    "AND a.external_id = 'platform:wallet_breakage'"
                ),
                {"w": wallet},
            ).scalar_one()
        )


async def test_unspent_money_expires_to_breakage_soonest_lot_spent_first(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, wallet = skipping_env, f"w-{uid}"
    with engine.begin() as conn:
        marketplace.create_wallet(
            conn, wallet_id=wallet, owner=f"u-{uid}", name="Gift card", currency="USD"
        )
    async with running_worker(env.client, engine, task_queue=task_queue):
        now = await env.get_current_time()

        def top_up(amount: int, expires_at: datetime | None) -> WalletLot:
            with engine.begin() as conn:
                return marketplace.top_up(
                    conn, wallet, amount=amount, settled=True, expires_at=expires_at, now=now
                )

        promo = top_up(1_000, now + timedelta(days=1))
        gift = top_up(1_000, now + timedelta(days=3))
        cash = top_up(500, None)
        extended = top_up(300, now + timedelta(days=4))
        cancelled = top_up(200, now + timedelta(days=4))
        # 1,200 spent: all of the promotion (expires first), 200 of the gift card.
        with engine.begin() as conn:
            spent = marketplace.spend(conn, wallet, amount=1_200, description="shoes", now=now)
        assert [(s.lot_id, s.amount) for s in spent.lots] == [(promo.id, 1_000), (gift.id, 200)]
        # An operator extends one expiry by four days and removes another.
        with engine.begin() as conn:
            marketplace.set_expiry(conn, wallet, extended.id, now + timedelta(days=8), now=now)
            marketplace.set_expiry(conn, wallet, cancelled.id, None, now=now)
        assert balance(engine, marketplace, wallet) == (1_800,) * 3

        # The first top-up woke (and started) the workflow, which sleeps until the next expiry
        # (the promotion's, or the gift card's if its first turn came after the spend).
        async def sleeping_until(*at: datetime | None) -> None:
            state = await get_wallet_expiry_state(env.client, wallet)
            assert state is not None and state.timer_at in at, state

        await eventually(lambda: sleeping_until(promo.expires_at, gift.expires_at))
        await env.sleep(timedelta(days=1, hours=1))
        # The promotion was all spent: nothing to expire; next comes the gift card.
        await eventually(lambda: sleeping_until(gift.expires_at))
        assert balance(engine, marketplace, wallet) == (1_800,) * 3
        assert breakage(engine, wallet) == 0

        await env.sleep(timedelta(days=2))

        def gift_card_expired() -> None:
            # Only the unspent 800 of the gift card went to breakage.
            assert balance(engine, marketplace, wallet) == (1_000,) * 3
            expired = lot(engine, marketplace, wallet, gift.id)
            assert (expired.status, expired.remaining, expired.expired_amount) == (
                "expired",
                0,
                800,
            )

        await eventually(gift_card_expired)
        assert breakage(engine, wallet) == 800
        # Day 4 passes: the extended and the cancelled expiry keep their money.
        await eventually(lambda: sleeping_until(now + timedelta(days=8)))
        await env.sleep(timedelta(days=2))
        await asyncio.sleep(0.5)  # time for a (wrong) expiry to show
        assert balance(engine, marketplace, wallet) == (1_000,) * 3

        # A refund of the whole spend: back to the lots it used, whose expiries have passed;
        # the workflow is woken and takes that money to breakage at once.
        with engine.begin() as conn:
            marketplace.refund_spend(conn, wallet, spent.id, now=now)

        def refund_expired() -> None:
            assert breakage(engine, wallet) == 800 + 1_200
            assert balance(engine, marketplace, wallet) == (1_000,) * 3

        await eventually(refund_expired)
        await env.sleep(timedelta(days=3))
        await eventually(lambda: _assert(breakage(engine, wallet) == 2_000 + 300))
        assert balance(engine, marketplace, wallet) == (700,) * 3
        assert lot(engine, marketplace, wallet, cash.id).remaining == 500
        assert lot(engine, marketplace, wallet, cancelled.id).remaining == 200
        assert ledger_transaction_count(engine, f"wallet-expiry:{gift.id}:1") == 1
        assert ledger_transaction_count(engine, f"wallet-expiry:{gift.id}:2") == 1
        # Nothing left that expires: the workflow waits for a wake, without a timer.
        await eventually(lambda: sleeping_until_none(env, wallet))

        # Its history holds turns, not top-ups: no signal per top-up that did not need one.
        history = await env.client.get_workflow_handle(
            wallet_expiries_workflow_id(wallet)
        ).fetch_history()
        signals = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        assert len(signals) <= 3, signals


async def sleeping_until_none(env: SkippingEnv, wallet: str) -> None:
    state = await get_wallet_expiry_state(env.client, wallet)
    assert state is not None and state.timer_at is None and state.expired_count >= 3, state


def _assert(condition: bool) -> None:
    assert condition


async def test_a_top_up_that_settles_after_its_expiry_expires_at_once(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, wallet = skipping_env, f"w-late-{uid}"
    with engine.begin() as conn:
        marketplace.create_wallet(conn, wallet_id=wallet, owner=uid, name="Late", currency="USD")
    async with running_worker(env.client, engine, task_queue=task_queue):
        now = await env.get_current_time()
        with engine.begin() as conn:
            pending = marketplace.top_up(
                conn, wallet, amount=400, expires_at=now + timedelta(days=1), now=now
            )
        # Pending money is not expired (nor does it wake the workflow).
        await env.sleep(timedelta(days=2))
        await asyncio.sleep(0.5)
        assert balance(engine, marketplace, wallet) == (400, 0, 0)
        assert await get_wallet_expiry_state(env.client, wallet) is None
        with engine.begin() as conn:
            settled = marketplace.settle_top_up(conn, wallet, pending.id)
        assert settled.status == "settled"

        def expired() -> None:
            assert balance(engine, marketplace, wallet) == (0, 0, 0)
            assert lot(engine, marketplace, wallet, pending.id).status == "expired"
            assert breakage(engine, wallet) == 400

        await eventually(expired)
