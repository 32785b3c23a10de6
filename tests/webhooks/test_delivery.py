"""Delivery end to end on the Temporal dev server: the worker's dispatcher hears the database's
notifications and wakes one delivery workflow per endpoint and seller, which POSTs each event,
signed, to a real HTTP receiver: in order per seller, retried with growing back-off, failed when
the attempts run out, re-sent through the API, and swept up when a notification was missed."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus

import signatures
from api.app import create_app
from api.auth import ApiKeyRole
from contracts.webhooks import WebhookRetry
from marketplace import Marketplace
from marketplace.webhooks import WebhookEndpoint, Webhooks
from observability.metrics import WEBHOOK_DELIVERIES
from server.dispatcher import Dispatcher, WebhookChannel
from tests.api.conftest import client_for, make_key
from tests.temporal_env import running_worker
from tests.webhooks.conftest import Receiver, new_seller

market = Marketplace()
hooks = Webhooks()


@asynccontextmanager
async def delivering(
    client: Client,
    engine: Engine,
    task_queue: str,
    retry: WebhookRetry,
    *,
    worker: bool = True,
) -> AsyncIterator[Dispatcher]:
    """The platform's worker and a dispatcher of webhooks on ``task_queue``."""
    stop = asyncio.Event()
    dispatcher = Dispatcher(
        engine,
        [WebhookChannel(engine, client, task_queue=task_queue, retry=retry, sweep_seconds=1.0)],
    )
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.active.wait(), timeout=15)
        if worker:
            # The tests book and post earnings themselves: no hold workflow joins in.
            async with running_worker(client, engine, task_queue=task_queue, wake_holds=False):
                yield dispatcher
        else:
            yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


Deliver = Callable[[WebhookRetry], AbstractAsyncContextManager[Dispatcher]]


@pytest.fixture
def deliver(temporal_client: Client, engine: Engine, task_queue: str) -> Deliver:
    """``delivering`` with the test's client, database and task queue."""
    return functools.partial(delivering, temporal_client, engine, task_queue)


async def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


@pytest.fixture
def endpoint(
    engine: Engine, receiver: Receiver, endpoints: list[WebhookEndpoint]
) -> WebhookEndpoint:
    """An endpoint of every event type at the test's receiver (deleted after the test)."""
    with engine.begin() as conn:
        created = hooks.create_endpoint(conn, url=receiver.url, event_types=["*"])
    endpoints.append(created)
    return created


def book(engine: Engine, seller: str, order: str, amount: int, *, post: bool = False) -> None:
    with engine.begin() as conn:
        market.book_earning(conn, seller_id=seller, order_id=order, amount=amount)
        if post:
            market.post_earning(conn, seller, order)


def deliveries(engine: Engine, endpoint_id: str, **filters: Any) -> list[Any]:
    with engine.connect() as conn:
        return hooks.list_deliveries(conn, endpoint_id=endpoint_id, limit=1000, **filters).items


def sent(outcome: str) -> float:
    return WEBHOOK_DELIVERIES.labels(direction="sent", outcome=outcome)._value.get()


async def test_events_reach_the_receiver_signed_once_each_in_order_per_seller(
    engine: Engine, receiver: Receiver, endpoint: WebhookEndpoint, deliver: Deliver
) -> None:
    before = sent("succeeded")
    sellers = [new_seller(engine), new_seller(engine)]
    async with deliver(WebhookRetry(0.2, 1.0, 5)):
        for i in range(3):
            for seller in sellers:
                book(engine, seller, f"o-{seller}-{i}", 100 * (i + 1), post=True)
        await until(lambda: len(receiver.received) >= 18)
        await asyncio.sleep(0.5)  # nothing more arrives
    assert len(receiver.received) == 18

    by_seller: dict[str, list[int]] = {s: [] for s in sellers}
    ids = set()
    for got in receiver.received:
        signatures.verify(
            endpoint.secret, got.headers["payouts-signature"], got.body, header_name="sig"
        )
        event = json.loads(got.body)
        assert got.headers["payouts-event-id"] == event["id"]
        assert got.headers["payouts-event-type"] == event["type"]
        assert got.headers["content-type"] == "application/json"
        ids.add(event["id"])
        by_seller[event["seller_id"]].append(event["sequence"])
    assert len(ids) == 18
    # Each seller's events arrive in sequence (earning.created, .posted, balance, thrice).
    assert all(seqs == list(range(1, 10)) for seqs in by_seller.values()), by_seller
    assert all(
        d.status.value == "succeeded" and d.attempts == 1 for d in deliveries(engine, endpoint.id)
    )
    assert sent("succeeded") - before == 18

    # A signature made with another secret, or over another body, does not verify.
    got = receiver.received[0]
    for secret, body in (("whsec_other", got.body), (endpoint.secret, got.body + b" ")):
        try:
            signatures.verify(secret, got.headers["payouts-signature"], body)
        except signatures.InvalidSignature:
            continue
        raise AssertionError("a forged delivery verified")


async def test_a_failing_receiver_gets_retries_with_growing_back_off_and_order_holds(
    engine: Engine, receiver: Receiver, endpoint: WebhookEndpoint, deliver: Deliver
) -> None:
    seller = new_seller(engine)
    receiver.fail_next = 3
    async with deliver(WebhookRetry(1.0, 10.0, 10)):
        book(engine, seller, f"o-{seller}-1", 100)
        book(engine, seller, f"o-{seller}-2", 200)
        await until(lambda: len(receiver.received) == 2)
    assert [json.loads(r.body)["sequence"] for r in receiver.received] == [1, 2]
    assert receiver.refused == 3
    first, second = sorted(deliveries(engine, endpoint.id), key=lambda d: d.sequence)
    assert (first.status.value, first.attempts, second.attempts) == ("succeeded", 4, 1)
    with engine.connect() as conn:
        attempts = hooks.list_attempts(conn, first.id)
        later = hooks.list_attempts(conn, second.id)
    assert [a.response_status for a in attempts] == [500, 500, 500, 200]
    assert (
        all(a.error and "HTTP 500" in a.error for a in attempts[:3]) and attempts[3].error is None
    )
    gaps = [
        (b.attempted_at - a.attempted_at).total_seconds() for a, b in itertools.pairwise(attempts)
    ]
    # 1 s, then doubling (Temporal's retry timers have a 1 s granularity): 1, 2, 4 s.
    assert gaps[0] >= 0.8 and gaps[1] > gaps[0] * 1.4 and gaps[2] > gaps[1] * 1.4, gaps
    # The second event waited for the first.
    assert later[0].attempted_at >= attempts[-1].attempted_at


async def test_a_delivery_that_runs_out_of_attempts_fails_visibly_and_is_resent_by_api(
    engine: Engine, receiver: Receiver, endpoint: WebhookEndpoint, deliver: Deliver
) -> None:
    seller = new_seller(engine)
    receiver.down = True
    failed_before = sent("failed")
    app = create_app(engine)
    async with deliver(WebhookRetry(0.1, 0.2, 3)):
        book(engine, seller, f"o-{seller}-1", 100)
        await until(lambda: deliveries(engine, endpoint.id, status="failed"))
        # The stream goes on after a failed delivery: the next event is sent when it can be.
        receiver.down = False
        book(engine, seller, f"o-{seller}-2", 200)
        await until(lambda: len(receiver.received) == 1)
        assert json.loads(receiver.received[0].body)["sequence"] == 2

        with client_for(app, make_key(engine, ApiKeyRole.OPERATOR)) as api:
            listed = api.get(
                "/v1/webhook_deliveries", params={"status": "failed", "endpoint_id": endpoint.id}
            ).json()["items"]
            assert len(listed) == 1 and listed[0]["attempts"] == 3
            assert listed[0]["workflow_id"] == f"webhook-delivery/{endpoint.id}/{seller}"
            detail = api.get(f"/v1/webhook_deliveries/{listed[0]['id']}").json()
            assert [a["response_status"] for a in detail["attempt_history"]] == [500, 500, 500]
            assert "retries exhausted" in detail["last_error"]
            resent = api.post(f"/v1/webhook_deliveries/{listed[0]['id']}/resend")
            assert resent.status_code == 200, resent.text
            assert resent.json()["status"] == "pending"
        await until(lambda: len(receiver.received) == 2)
    assert json.loads(receiver.received[1].body)["sequence"] == 1
    (first,) = [d for d in deliveries(engine, endpoint.id) if d.sequence == 1]
    assert (first.status.value, first.attempts) == ("succeeded", 4)
    assert sent("failed") - failed_before == 1


async def test_deliveries_recorded_while_no_dispatcher_listened_are_swept_up(
    engine: Engine, receiver: Receiver, endpoint: WebhookEndpoint, deliver: Deliver
) -> None:
    seller = new_seller(engine)
    book(engine, seller, f"o-{seller}", 100)  # notified with nobody listening
    async with deliver(WebhookRetry(0.2, 1.0, 5)):
        await until(lambda: len(receiver.received) == 1)
    assert json.loads(receiver.received[0].body)["type"] == "earning.created"


async def test_one_dispatcher_is_active_at_a_time_and_another_takes_over(
    temporal_client: Client, engine: Engine, task_queue: str
) -> None:
    retry = WebhookRetry()
    async with delivering(temporal_client, engine, task_queue, retry, worker=False) as first:
        stop = asyncio.Event()
        second = Dispatcher(
            engine,
            [WebhookChannel(engine, temporal_client, task_queue=task_queue, sweep_seconds=0.3)],
        )
        task = asyncio.create_task(second.run(stop))
        await asyncio.sleep(1.0)
        assert first.active.is_set() and not second.active.is_set()
    try:
        await asyncio.wait_for(second.active.wait(), timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_the_sweep_leaves_a_running_stream_alone(
    temporal_client: Client,
    engine: Engine,
    receiver: Receiver,
    endpoint: WebhookEndpoint,
    deliver: Deliver,
) -> None:
    """A stream retrying one delivery for hours is not signalled at every sweep (its history
    would grow by a signal every 30 s): the sweep only starts streams that do not run."""
    seller = new_seller(engine)
    receiver.down = True
    async with deliver(WebhookRetry(60.0, 60.0, 3)):
        book(engine, seller, f"o-{seller}", 100)
        await until(lambda: receiver.refused >= 1)
        await asyncio.sleep(3.5)  # about three sweeps (every 1 s) while it waits to retry
        handle = temporal_client.get_workflow_handle(f"webhook-delivery/{endpoint.id}/{seller}")
        history = await handle.fetch_history()
        signals = [
            e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert len(signals) == 1, "the notification's wake only"
        await handle.terminate("test over")
