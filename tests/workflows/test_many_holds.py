"""A seller with tens of thousands of open holds, on the dev server in real time: PostgreSQL
keeps the holds, the seller's hold workflow keeps only time. Operators release the oldest and the
newest hold, the holds list pages through the database, and when the holds end the workflow posts
them all, each once, in set-based batches, with a history of a few hundred small events at most."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, text
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.holds import seller_holds_workflow_id
from marketplace import EarningRequest, EarningStatus, Marketplace
from temporal_calls import holds
from tests.helpers import eventually
from tests.temporal_env import new_task_queue, running_worker
from tests.workflows.conftest import balances, create_seller, views

HOLDS = 20_000
BATCH = 1_000
# Long enough that no hold ends before the checks of open holds below, even with booking 20,000
# earnings on a busy 2-core CI machine (seen: 10 s), short enough to wait for.
HOLD = timedelta(seconds=45)


async def test_a_seller_with_twenty_thousand_open_holds(
    temporal_client: Client, engine: Engine
) -> None:
    market = Marketplace()
    seller = f"many-{uuid.uuid4().hex[:8]}"
    create_seller(engine, market, seller, hold_period=HOLD)
    orders = [f"o-{n:05}" for n in range(HOLDS)]
    async with running_worker(temporal_client, engine, task_queue=new_task_queue("many")):
        for i in range(0, HOLDS, BATCH):  # as POST /v1/earnings/batch books them
            with engine.begin() as conn:
                outcomes = market.book_earnings(
                    conn, [EarningRequest(seller, o, 1_000, 100) for o in orders[i : i + BATCH]]
                )
            assert all(o.created for o in outcomes)
        assert views(balances(engine, market, seller)) == (HOLDS * 900, 0, 0)

        # The first booking woke the seller's workflow (started by the dispatcher).
        handle = temporal_client.get_workflow_handle(seller_holds_workflow_id(seller))

        async def started() -> None:
            try:
                await handle.describe()
            except RPCError as err:
                raise AssertionError("not started yet") from err

        await eventually(started, timeout=30)
        # The oldest and the newest, released by an operator (workflow updates).
        first, last = orders[0], orders[-1]
        for order in (first, last):
            released = await holds.release_hold(temporal_client, seller, order)
            assert released.status == "posted"
        assert views(balances(engine, market, seller)) == (HOLDS * 900, 1_800, 1_800)

        # The list: the soonest end first, from the database, page by page.
        with engine.connect() as conn:
            page = market.holds.list_holds(conn, seller, limit=100)
            assert [h.order_id for h in page.items] == orders[1:101]
            assert page.next_after is not None
            ends_at, order, kind = json.loads(page.next_after)  # as the API's cursor carries it
            position = (datetime.fromisoformat(ends_at), order, kind)
            after = market.holds.list_holds(conn, seller, after=position, limit=100)
            assert [h.order_id for h in after.items] == orders[101:201]
        assert balances(engine, market, seller).on_hold == (HOLDS - 2) * 900

        def all_posted() -> None:
            assert views(balances(engine, market, seller)) == ((HOLDS * 900,) * 3)

        await eventually(all_posted, timeout=HOLD.total_seconds() + 60, interval=0.5)

        with engine.connect() as conn:
            posted_once = conn.execute(
                text(
                    "SELECT count(*) FROM earnings e JOIN ledger_transactions t"
                    " ON t.id = e.ledger_transaction_id"
                    " WHERE e.seller_id = :s AND e.status = :posted AND t.status = 'posted'"
                ),
                {"s": seller, "posted": str(EarningStatus.POSTED)},
            ).scalar_one()
            events = conn.execute(
                text(
                    "SELECT count(*) FROM events WHERE seller_id = :s AND type = 'earning.posted'"
                ),
                {"s": seller},
            ).scalar_one()
        assert posted_once == events == HOLDS

        # Nothing per order in the history: no event carries a list of holds (20,000 order ids
        # would be hundreds of KB), and the number of events is set by the turns, wakes and
        # updates (a few dozen to a couple of hundred, more turns on a busier machine), not by the
        # 20,000 holds.
        history = await handle.fetch_history()
        largest = max(len(e.SerializeToString()) for e in history.events)
        assert largest < 4_000, f"an event of {largest} bytes"
        assert len(history.events) < 500, f"{len(history.events)} events"
