"""The dispute workflow on the time-skipping server with the real activities: opening puts a
pending debit on the seller (available drops, posted does not); won archives it, lost posts it,
and an unresolved dispute is lost at its deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from marketplace import Marketplace
from temporal_calls import disputes as wf
from temporal_calls.errors import WorkflowRequestError
from tests.helpers import eventually
from tests.temporal_env import running_worker
from tests.workflows.conftest import SkippingEnv, balances, create_seller, views


def seller_with_posted_money(engine: Engine, marketplace: Marketplace, seller: str) -> None:
    create_seller(engine, marketplace, seller)
    with engine.begin() as conn:
        marketplace.book_earning(conn, seller_id=seller, order_id=f"{seller}-o", amount=10_000)
        marketplace.post_earning(conn, seller, f"{seller}-o")


async def test_a_won_dispute_gives_the_money_back(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, seller, dispute_id = skipping_env, f"s-{uid}", f"d-{uid}"
    seller_with_posted_money(engine, marketplace, seller)
    deadline = (await env.get_current_time()) + timedelta(days=30)
    async with running_worker(env.client, engine, task_queue=task_queue, wake_holds=False):
        opened = await wf.open_dispute(
            env.client,
            dispute_id,
            seller,
            f"{seller}-o",
            4_000,
            deadline,
            "fraudulent",
            task_queue=task_queue,
        )
        assert opened.status == "open"
        # Available drops; posted does not.
        assert views(balances(engine, marketplace, seller)) == (6_000, 10_000, 6_000)
        assert balances(engine, marketplace, seller).in_dispute == 4_000
        again = await wf.open_dispute(
            env.client, dispute_id, seller, f"{seller}-o", 4_000, deadline, task_queue=task_queue
        )
        assert again.ledger_transaction_id == opened.ledger_transaction_id
        state = await wf.get_dispute(env.client, dispute_id)
        assert (state.status, state.outcome) == ("open", None)

        with pytest.raises(WorkflowRequestError) as bad:
            await wf.resolve_dispute(env.client, dispute_id, "maybe")
        assert bad.value.code == "validation_failed"

        won = await wf.resolve_dispute(env.client, dispute_id, "won")
        assert won.status == "won"
        assert views(balances(engine, marketplace, seller)) == (10_000, 10_000, 10_000)
        # The same outcome again answers the same; the other one is refused.
        assert (await wf.resolve_dispute(env.client, dispute_id, "won")).status == "won"
        with pytest.raises(WorkflowRequestError) as other:
            await wf.resolve_dispute(env.client, dispute_id, "lost")
        assert other.value.code == "dispute_already_resolved"
        state = await wf.get_dispute(env.client, dispute_id)
        assert (state.status, state.resolved_by) == ("won", "operator")
        # Opening it again after it ended returns the dispute as it ended.
        ended = await wf.open_dispute(
            env.client, dispute_id, seller, f"{seller}-o", 4_000, deadline, task_queue=task_queue
        )
        assert ended.status == "won"


async def test_a_lost_dispute_and_one_past_its_deadline_are_posted(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, seller = skipping_env, f"s-{uid}"
    seller_with_posted_money(engine, marketplace, seller)
    deadline = (await env.get_current_time()) + timedelta(days=10)
    async with running_worker(env.client, engine, task_queue=task_queue, wake_holds=False):
        await wf.open_dispute(
            env.client, f"lost-{uid}", seller, f"{seller}-o", 1_000, deadline, task_queue=task_queue
        )
        await wf.open_dispute(
            env.client, f"late-{uid}", seller, f"{seller}-o", 2_000, deadline, task_queue=task_queue
        )
        assert views(balances(engine, marketplace, seller)) == (7_000, 10_000, 7_000)
        lost = await wf.resolve_dispute(env.client, f"lost-{uid}", "lost")
        assert lost.status == "lost"
        assert views(balances(engine, marketplace, seller)) == (7_000, 9_000, 7_000)

        await env.sleep(timedelta(days=10, minutes=1))

        def late_is_lost() -> None:
            assert views(balances(engine, marketplace, seller)) == (7_000, 7_000, 7_000)
            assert balances(engine, marketplace, seller).in_dispute == 0

        await eventually(late_is_lost)
        state = await wf.get_dispute(env.client, f"late-{uid}")
        assert (state.status, state.resolved_by) == ("lost", "deadline")
        with pytest.raises(WorkflowRequestError) as missing:
            await wf.get_dispute(env.client, f"nope-{uid}")
        assert missing.value.code == "dispute_not_found"


async def test_a_dispute_for_an_unknown_seller_fails_and_can_be_retried(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    env, seller, dispute_id = skipping_env, f"s-{uid}", f"d-{uid}"
    deadline = (await env.get_current_time()) + timedelta(days=5)
    async with running_worker(env.client, engine, task_queue=task_queue, wake_holds=False):
        with pytest.raises(WorkflowRequestError) as missing:
            await wf.open_dispute(
                env.client, dispute_id, seller, "o", 100, deadline, task_queue=task_queue
            )
        assert missing.value.code == "seller_not_found"
        seller_with_posted_money(engine, marketplace, seller)
        opened = await wf.open_dispute(
            env.client, dispute_id, seller, "o", 100, deadline, task_queue=task_queue
        )
        assert opened.status == "open"
        assert balances(engine, marketplace, seller).available == 9_900


async def test_the_api_s_way_the_request_writes_and_the_workflow_keeps_the_deadline(
    skipping_env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    """As the API does it: the workflow started (not waited for), the pending debit written by
    the request, the operator's outcome written by its request and signalled. The workflow finds
    the dispute open, stops waiting for the deadline and records the outcome. One resolved by
    the request with the other outcome than the deadline's (they raced): the database decides,
    the workflow records what it says and completes."""
    env, seller = skipping_env, f"s-{uid}"
    seller_with_posted_money(engine, marketplace, seller)
    deadline = (await env.get_current_time()) + timedelta(days=10)
    async with running_worker(env.client, engine, task_queue=task_queue, wake_holds=False):
        for name in ("signalled", "raced"):
            dispute_id = f"{name}-{uid}"
            await wf.start_dispute(
                env.client,
                dispute_id,
                seller,
                f"{seller}-o",
                1_000,
                deadline,
                task_queue=task_queue,
            )
            with engine.begin() as conn:
                marketplace.open_dispute(
                    conn,
                    dispute_id=dispute_id,
                    seller_id=seller,
                    order_id=f"{seller}-o",
                    amount=1_000,
                    deadline=deadline,
                )
        assert views(balances(engine, marketplace, seller)) == (8_000, 10_000, 8_000)

        async def both_waiting() -> None:
            for name in ("signalled", "raced"):
                state = await wf.get_dispute(env.client, f"{name}-{uid}")
                assert (state.status, state.outcome) == ("open", None), name

        await eventually(both_waiting)
        await wf.tell_dispute_outcome(env.client, f"signalled-{uid}", "won")
        with engine.begin() as conn:
            marketplace.resolve_dispute(conn, f"signalled-{uid}", "won")
        # The other is won by its request as the deadline passes (no signal reached it in time).
        with engine.begin() as conn:
            marketplace.resolve_dispute(conn, f"raced-{uid}", "won")
        await env.sleep(timedelta(days=10, minutes=1))

        async def both_recorded() -> None:
            for name in ("signalled", "raced"):
                state = await wf.get_dispute(env.client, f"{name}-{uid}")
                assert (state.status, state.outcome, state.resolved_by) == (
                    "won",
                    "won",
                    "operator",
                ), name

        await eventually(both_recorded)
        assert views(balances(engine, marketplace, seller)) == (10_000, 10_000, 10_000)
        # Telling a dispute whose workflow has ended is nothing to hear.
        await wf.tell_dispute_outcome(env.client, f"signalled-{uid}", "won")
