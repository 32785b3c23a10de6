"""The wallet expiry workflow does not grow with the wallet's top-ups: thirty lots expiring an
hour apart on the time-skipping server take thirty turns, and with a small history limit the
workflow continues as new several times, carrying a counter, never a lot."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType

from contracts.wallets import WalletExpiryInput
from marketplace import Marketplace
from temporal_calls.wallets import get_wallet_expiry_state, start_wallet_expiries
from tests.helpers import eventually
from tests.temporal_env import SkippingEnv, running_worker

LOTS = 30


async def test_thirty_expiries_in_a_workflow_that_continues_as_new(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, wallet = skipping_env, f"w-can-{uid}"
    with engine.begin() as conn:
        marketplace.create_wallet(conn, wallet_id=wallet, owner=uid, name="Promo", currency="USD")
    async with running_worker(env.client, engine, task_queue=task_queue):
        # Started with a small history limit before anything expires (a wake finds it running).
        handle = await start_wallet_expiries(
            env.client, wallet, history_limit=40, task_queue=task_queue
        )
        first_run = (await handle.describe()).run_id
        now = await env.get_current_time()
        with engine.begin() as conn:
            for n in range(1, LOTS + 1):
                marketplace.top_up(
                    conn,
                    wallet,
                    amount=100,
                    settled=True,
                    expires_at=now + timedelta(hours=n),
                    now=now,
                )

        # The top-ups' wake reaches the workflow through the dispatcher: once it has run a turn
        # and sleeps until the first expiry, the skipped time takes the lots one turn at a time
        # (skipping first would leave one turn to expire all thirty: no continue-as-new).
        async def sleeping_until_the_first_expiry() -> None:
            state = await get_wallet_expiry_state(env.client, wallet)
            assert state is not None and state.timer_at is not None, state

        await eventually(sleeping_until_the_first_expiry)
        await env.sleep(timedelta(hours=LOTS, minutes=30))

        def all_expired() -> None:
            with engine.begin() as conn:
                b = marketplace.wallet_balances(conn, wallet)
            assert (b.posted, b.expiring) == (0, 0), b

        await eventually(all_expired, timeout=60)

        async def counted() -> None:
            state = await get_wallet_expiry_state(env.client, wallet)
            assert state is not None and state.expired_count == LOTS and state.timer_at is None

        await eventually(counted)
        latest = env.client.get_workflow_handle(handle.id)
        assert (await latest.describe()).run_id != first_run, "it continued as new"
        history = await latest.fetch_history()
        started = history.events[0]
        assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        attributes = started.workflow_execution_started_event_attributes
        assert attributes.continued_execution_run_id
        # The input carried over is the wallet, the limit and a counter: a few dozen bytes.
        (payload,) = attributes.input.payloads
        assert len(payload.data) < 200, payload.data
        carried = WalletExpiryInput(**json.loads(payload.data))
        assert carried.wallet_id == wallet and 0 < carried.expired_count <= LOTS
        assert len(history.events) < 60
