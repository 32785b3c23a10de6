"""A wake that got lost (the API or the worker killed between the commit and the signal, the
dispatcher or Temporal down) loses nothing: the top-up's commit recorded the wake request on the
wallet's row, and the dispatcher's sweep wakes (and starts) the expiry workflow from it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from marketplace import Marketplace
from temporal_calls.wallets import get_wallet_expiry_state
from tests.helpers import eventually
from tests.temporal_env import SkippingEnv, running_worker


async def test_the_sweep_wakes_a_wallet_whose_notification_was_lost(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, wallet = skipping_env, f"w-lost-{uid}"
    with engine.begin() as conn:
        marketplace.create_wallet(conn, wallet_id=wallet, owner=uid, name="Gift", currency="USD")
    now = await env.get_current_time()
    # No dispatcher listens: the notification of this commit goes nowhere.
    with engine.begin() as conn:
        lot = marketplace.top_up(
            conn, wallet, amount=700, settled=True, expires_at=now + timedelta(days=2), now=now
        )
    with engine.begin() as conn:
        timer_at, requested = marketplace.expiry_clock(conn, wallet)
    assert (timer_at, requested) == (None, lot.expires_at)
    assert await get_wallet_expiry_state(env.client, wallet) is None

    # A worker whose dispatcher sweeps this wallet: it finds the unanswered request.
    async with running_worker(env.client, engine, task_queue=task_queue, sweep_holds=wallet):

        async def sleeping_until_the_expiry() -> None:
            state = await get_wallet_expiry_state(env.client, wallet)
            assert state is not None and state.timer_at == lot.expires_at, state

        await eventually(sleeping_until_the_expiry)
        with engine.begin() as conn:
            assert marketplace.expiry_clock(conn, wallet) == (lot.expires_at, None)
        await env.sleep(timedelta(days=2, minutes=1))

        def expired() -> None:
            with engine.begin() as conn:
                assert marketplace.wallet_balances(conn, wallet).posted == 0

        await eventually(expired)
