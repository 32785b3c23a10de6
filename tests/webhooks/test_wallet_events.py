"""Wallet events through the webhooks, end to end on the Temporal dev server: each wallet is a
stream of its own (numbered per wallet), delivered signed, in order, to an endpoint subscribed to
wallet event types, through the same dispatcher and delivery workflows as the sellers' events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client

import signatures
from marketplace import Marketplace
from marketplace.webhooks import WebhookEndpoint, Webhooks
from server.dispatcher import Dispatcher, WebhookChannel
from tests.temporal_env import running_worker
from tests.webhooks.conftest import Receiver

market = Marketplace()


async def until(check: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def test_wallet_events_reach_a_subscriber_in_order_per_wallet(
    engine: Engine,
    receiver: Receiver,
    endpoints: list[WebhookEndpoint],
    temporal_client: Client,
    task_queue: str,
) -> None:
    with engine.begin() as conn:
        endpoint = Webhooks().create_endpoint(
            conn,
            url=receiver.url,
            event_types=["wallet.top_up.settled", "wallet.spent", "wallet.transfer"],
        )
        endpoints.append(endpoint)
        alice, _ = market.create_wallet(conn, owner="u-a", name="Alice", currency="USD")
        bob, _ = market.create_wallet(conn, owner="u-b", name="Bob", currency="USD")
    stop = asyncio.Event()
    dispatcher = Dispatcher(
        engine,
        [WebhookChannel(engine, temporal_client, task_queue=task_queue, sweep_seconds=1.0)],
        lock_scope=task_queue,
    )
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.active.wait(), timeout=15)
        async with running_worker(temporal_client, engine, task_queue=task_queue):
            with engine.begin() as conn:
                market.top_up(conn, alice.id, amount=1_000, settled=True)
            with engine.begin() as conn:
                market.spend(conn, alice.id, amount=300, description="tea")
            with engine.begin() as conn:
                market.transfer(conn, from_wallet_id=alice.id, to_wallet_id=bob.id, amount=200)
            await until(lambda: len(receiver.received) >= 4)
            await asyncio.sleep(0.5)  # nothing more arrives
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)

    assert len(receiver.received) == 4
    events = []
    for got in receiver.received:
        signatures.verify(
            endpoint.secret, got.headers["payouts-signature"], got.body, header_name="sig"
        )
        events.append(json.loads(got.body))
    of_alice = [e for e in events if e["wallet_id"] == alice.id]
    # Alice's stream: created (1, not subscribed), settled (2), spent (3), transfer (4).
    assert [(e["type"], e["sequence"]) for e in of_alice] == [
        ("wallet.top_up.settled", 2),
        ("wallet.spent", 3),
        ("wallet.transfer", 4),
    ]
    assert [e["data"]["balances"]["available"] for e in of_alice] == [1_000, 700, 500]
    (to_bob,) = [e for e in events if e["wallet_id"] == bob.id]
    assert (to_bob["type"], to_bob["data"]["direction"]) == ("wallet.transfer", "in")
    assert all("seller_id" not in e for e in events)
    assert uuid.UUID(to_bob["data"]["object"]["ledger_transaction_id"])
