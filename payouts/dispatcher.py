"""The webhook dispatcher: turns the database's ``webhook_deliveries`` notifications into delivery
workflows. Runs in every worker process; one at a time is active.

``marketplace.events.record_event`` sends ``pg_notify('webhook_deliveries', '<endpoint>
<seller>')`` in the transaction that records an event with deliveries, so the notification
arrives when, and only if, the event committed. The dispatcher LISTENs on a connection of its own
and wakes the stream's workflow (``workflows.webhook_client.wake_delivery_stream``:
signal-with-start), a burst of notifications batched and deduplicated.

Nothing is lost if a notification is (the dispatcher was down, its connection broke, PostgreSQL
restarted): on becoming active and then every ``sweep_seconds`` it starts the workflow of every
stream with a pending delivery untouched for that long, unless it runs (a running one finds
its pending deliveries itself, so the sweep adds nothing to a long retry's history). The
delivery workflows read what to send from the database, so an extra wake costs one query.

Only the dispatcher holding the PostgreSQL advisory lock ``webhook-dispatcher`` (on its listening
connection) is active; the others retry every ``sweep_seconds`` and take over when the holder's
connection goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from temporalio.client import Client

from marketplace.events import NOTIFY_CHANNEL, Webhooks
from workflows.registry import TASK_QUEUE
from workflows.webhook_client import wake_delivery_stream
from workflows.webhook_types import WebhookRetry

log = logging.getLogger(__name__)

LOCK_KEY = "webhook-dispatcher"
# After the first notification of a burst, wait this long for more before waking workflows.
BATCH_WINDOW = 0.05
# Workflows woken at once.
CONCURRENCY = 16


def libpq_url(url: str) -> str:
    """A SQLAlchemy or plain PostgreSQL URL as libpq (psycopg.connect) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class WebhookDispatcher:
    def __init__(
        self,
        engine: Engine,
        client: Client,
        *,
        task_queue: str = TASK_QUEUE,
        retry: WebhookRetry | None = None,
        sweep_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.client = client
        self.task_queue = task_queue
        self.retry = retry or WebhookRetry()
        self.sweep_seconds = sweep_seconds
        self.webhooks = Webhooks()
        self.active = asyncio.Event()
        """Set while this dispatcher holds the lock and listens (for tests and logs)."""
        self.woken = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: connect, take the lock, listen and wake; reconnect after
        errors with back-off."""
        backoff = 0.5
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 0.5
            except (psycopg.Error, OSError) as exc:
                log.warning("webhook dispatcher lost its database connection (%s); retrying", exc)
            except Exception:
                log.exception("webhook dispatcher failed; retrying")
            finally:
                self.active.clear()
            if not stop.is_set():
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 10.0)

    async def _session(self, stop: asyncio.Event) -> None:
        url = libpq_url(self.engine.url.render_as_string(hide_password=False))
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while True:
                cur = await conn.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (LOCK_KEY,)
                )
                row = await cur.fetchone()
                if row is not None and row[0]:
                    break
                if await _sleep_or_stop(stop, self.sweep_seconds):
                    return
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.active.set()
            log.info("webhook dispatcher active")
            # Whatever was notified while no dispatcher listened.
            await self._sweep(idle_seconds=0)
            next_sweep = time.monotonic() + self.sweep_seconds
            while not stop.is_set():
                streams: set[tuple[str, str]] = set()
                wait = max(0.0, min(1.0, next_sweep - time.monotonic()))
                async for note in conn.notifies(timeout=wait, stop_after=1):
                    streams.add(_stream(note.payload))
                if streams:
                    async for note in conn.notifies(timeout=BATCH_WINDOW, stop_after=1000):
                        streams.add(_stream(note.payload))
                    await self._wake(streams)
                if time.monotonic() >= next_sweep:
                    await self._sweep(idle_seconds=self.sweep_seconds)
                    next_sweep = time.monotonic() + self.sweep_seconds
                # A dead connection fails the next notifies/execute and ends the session.
                await conn.execute("SELECT 1")

    async def _sweep(self, *, idle_seconds: float) -> None:
        def pending() -> list[tuple[str, str]]:
            with self.engine.connect() as conn:
                return self.webhooks.streams_with_pending(conn, idle_seconds=idle_seconds)

        streams = await asyncio.to_thread(pending)
        if streams:
            log.info("webhook sweep wakes %d delivery streams", len(streams))
            await self._wake(set(streams), signal=False)

    async def _wake(self, streams: set[tuple[str, str]], *, signal: bool = True) -> None:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def wake(endpoint_id: str, seller_id: str) -> None:
            async with limit:
                await wake_delivery_stream(
                    self.client,
                    endpoint_id,
                    seller_id,
                    retry=self.retry,
                    task_queue=self.task_queue,
                    signal=signal,
                )

        targets = sorted((e, s) for e, s in streams if e and s)
        results = await asyncio.gather(*(wake(e, s) for e, s in targets), return_exceptions=True)
        for (endpoint_id, seller_id), result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                # The sweep wakes it later.
                log.warning(
                    "could not wake webhook stream %s/%s: %s", endpoint_id, seller_id, result
                )
        self.woken += sum(1 for r in results if not isinstance(r, BaseException))


def _stream(payload: str) -> tuple[str, str]:
    endpoint_id, _, seller_id = payload.partition(" ")
    return endpoint_id, seller_id


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; returns whether it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
