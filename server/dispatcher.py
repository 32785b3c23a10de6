"""The worker's dispatcher: turns PostgreSQL notifications, sent at commit by the transactions
that need a workflow to act, into signals, and sweeps for whatever a lost notification left.
Runs in every worker process; one at a time is active.

Channels (each a ``Channel``: what to do on a burst of notifications, and a sweep):

* ``webhook_deliveries`` (``marketplace.events``): ``'<endpoint> <seller>'`` when an event has
  deliveries; wakes the stream's delivery workflow (signal-with-start). The sweep starts the
  workflow of every stream with a pending delivery untouched for a while, unless it runs (a
  running one finds its pending deliveries itself, so the sweep adds nothing to a long retry's
  history).
* ``seller_holds`` (``marketplace.holds``): ``'<seller>'`` when a booking's hold ends before
  the seller's hold workflow would look; sends it the ``wake`` signal (signal-with-start, so a
  seller's first earning starts its workflow). The sweep wakes every seller whose wake request
  went unanswered, or whose timer passed without the workflow looking, for ``grace``: a lost
  notification (no dispatcher, Temporal down, PostgreSQL restarted) delays a release by at most
  a sweep, never strands it.
* ``wallet_expiries`` (``marketplace.wallets``): ``'<wallet>'`` when a write makes a lot of the
  wallet expire before its expiry workflow would look; sends the workflow ``wake``
  (signal-with-start). The sweep wakes every wallet whose wake request went unanswered, or whose
  timer passed without a turn, for ``grace``, as for holds.

Notifications arrive when, and only if, their transaction committed. The dispatcher LISTENs on a
connection of its own; a burst is batched (``BATCH_WINDOW``) and deduplicated. Only the dispatcher
holding the PostgreSQL advisory lock ``worker-dispatcher`` (on its listening connection) is
active; the others retry every sweep and take over when the holder's connection goes away. On
becoming active it sweeps every channel at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Protocol

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from temporalio.client import Client

from contracts.common import TASK_QUEUE
from contracts.webhooks import WebhookRetry
from marketplace import Marketplace
from marketplace.holds import NOTIFY_CHANNEL as HOLDS_CHANNEL
from marketplace.wallets import NOTIFY_CHANNEL as WALLETS_CHANNEL
from marketplace.webhooks import NOTIFY_CHANNEL as WEBHOOK_CHANNEL
from marketplace.webhooks import Webhooks
from temporal_calls.holds import wake_seller_holds
from temporal_calls.wallets import wake_wallet_expiries
from temporal_calls.webhooks import wake_delivery_stream

log = logging.getLogger(__name__)

LOCK_KEY = "worker-dispatcher"  # + ":" + its channels, so dispatchers of other channels coexist
# After the first notification of a burst, wait this long for more before waking workflows.
BATCH_WINDOW = 0.05
# Workflows woken at once.
CONCURRENCY = 16


def libpq_url(url: str) -> str:
    """A SQLAlchemy or plain PostgreSQL URL as libpq (psycopg.connect) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Channel(Protocol):
    name: str
    """The LISTEN channel."""
    sweep_seconds: float

    async def wake(self, payloads: set[str]) -> None:
        """A burst of notifications (their payloads, deduplicated)."""

    async def sweep(self, *, first: bool) -> None:
        """Catch up on lost notifications (``first``: the dispatcher just became active)."""


async def wake_all(
    targets: Sequence[str], wake: Callable[[str], Awaitable[None]], what: str
) -> int:
    """``wake`` every target, ``CONCURRENCY`` at a time; a failure is logged (the next sweep
    tries again). Returns how many were woken."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(target: str) -> None:
        async with limit:
            await wake(target)

    results = await asyncio.gather(*(one(t) for t in targets), return_exceptions=True)
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("could not wake %s %s: %s", what, target, result)
    return sum(1 for r in results if not isinstance(r, BaseException))


class WebhookChannel:
    name = WEBHOOK_CHANNEL

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
        self.woken = 0

    async def wake(self, payloads: set[str], *, signal: bool = True) -> None:
        async def wake(stream: str) -> None:
            endpoint_id, _, seller_id = stream.partition(" ")
            await wake_delivery_stream(
                self.client,
                endpoint_id,
                seller_id,
                retry=self.retry,
                task_queue=self.task_queue,
                signal=signal,
            )

        streams = sorted(p for p in payloads if p.partition(" ")[2])
        self.woken += await wake_all(streams, wake, "webhook stream")

    async def sweep(self, *, first: bool) -> None:
        idle = 0 if first else self.sweep_seconds

        def pending() -> list[tuple[str, str]]:
            with self.engine.connect() as conn:
                return self.webhooks.streams_with_pending(conn, idle_seconds=idle)

        streams = await asyncio.to_thread(pending)
        if streams:
            log.info("webhook sweep wakes %d delivery streams", len(streams))
            await self.wake({f"{e} {s}" for e, s in streams}, signal=False)


class WakeChannel:
    """A channel whose notifications name workflows to wake (signal-with-start), one per id
    (a seller, a wallet), and whose sweep wakes the ids the database says are due but whose
    notification may have been lost. Subclasses say which workflow (``wake_one``) and which ids
    are due (``due``)."""

    name: str
    # What one id's workflow is, and what the sweep wakes, for the logs.
    what = ""
    swept_what = ""

    def __init__(
        self,
        engine: Engine,
        client: Client,
        *,
        task_queue: str = TASK_QUEUE,
        sweep_seconds: float = 10.0,
        grace: timedelta | None = None,
        marketplace: Marketplace | None = None,
        sweep_prefix: str | None = "",
    ) -> None:
        self.engine = engine
        self.client = client
        self.task_queue = task_queue
        self.sweep_seconds = sweep_seconds
        # A request younger than this may have its signal in flight: leave it to the signal.
        self.grace = grace if grace is not None else timedelta(seconds=sweep_seconds)
        self.marketplace = marketplace or Marketplace()
        # None: no sweep; a prefix: only ids that start with it (tests that share a database
        # with many others).
        self.sweep_prefix = sweep_prefix
        self.woken = 0
        self.swept = 0

    async def wake_one(self, key: str) -> None:
        raise NotImplementedError

    def due(self, conn: Connection, prefix: str) -> list[str]:
        raise NotImplementedError

    async def wake(self, payloads: set[str]) -> None:
        ids = sorted(p for p in payloads if p)
        self.woken += await wake_all(ids, self.wake_one, self.what)

    async def sweep(self, *, first: bool) -> None:
        prefix = self.sweep_prefix
        if prefix is None:
            return

        def due() -> list[str]:
            with self.engine.connect() as conn:
                return self.due(conn, prefix)

        ids = await asyncio.to_thread(due)
        if ids:
            log.info("sweep wakes %d %s", len(ids), self.swept_what)
            self.swept += len(ids)
            await self.wake(set(ids))


class HoldChannel(WakeChannel):
    name = HOLDS_CHANNEL
    what = "hold workflow of seller"
    swept_what = "sellers' hold workflows"

    async def wake_one(self, key: str) -> None:
        await wake_seller_holds(self.client, key, task_queue=self.task_queue)

    def due(self, conn: Connection, prefix: str) -> list[str]:
        return self.marketplace.holds.sellers_to_wake(conn, grace=self.grace, prefix=prefix)


class WalletExpiryChannel(WakeChannel):
    name = WALLETS_CHANNEL
    what = "expiry workflow of wallet"
    swept_what = "wallets' expiry workflows"

    async def wake_one(self, key: str) -> None:
        await wake_wallet_expiries(self.client, key, task_queue=self.task_queue)

    def due(self, conn: Connection, prefix: str) -> list[str]:
        return self.marketplace.wallets_to_wake(conn, grace=self.grace, prefix=prefix)


class Dispatcher:
    def __init__(
        self, engine: Engine, channels: Sequence[Channel], *, lock_scope: str = ""
    ) -> None:
        """``lock_scope``: dispatchers of different scopes are active side by side (tests, each
        with a task queue of its own); the platform has one scope."""
        self.engine = engine
        self.channels = {c.name: c for c in channels}
        self.lock_scope = lock_scope
        self.active = asyncio.Event()
        """Set while this dispatcher holds the lock and listens (for tests and logs)."""

    @property
    def lock_key(self) -> str:
        return f"{LOCK_KEY}:{','.join(sorted(self.channels))}:{self.lock_scope}"

    @property
    def poll_seconds(self) -> float:
        return min(c.sweep_seconds for c in self.channels.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: connect, take the lock, listen and wake; reconnect after
        errors with back-off."""
        backoff = 0.5
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 0.5
            except (psycopg.Error, OSError) as exc:
                log.warning("dispatcher lost its database connection (%s); retrying", exc)
            except Exception:
                log.exception("dispatcher failed; retrying")
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
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.lock_key,)
                )
                row = await cur.fetchone()
                if row is not None and row[0]:
                    break
                if await _sleep_or_stop(stop, self.poll_seconds):
                    return
            for name in self.channels:
                await conn.execute(f"LISTEN {name}")
            self.active.set()
            log.info("dispatcher active on %s", ", ".join(self.channels))
            # Whatever was notified while no dispatcher listened.
            for channel in self.channels.values():
                await channel.sweep(first=True)
            next_sweep = {n: time.monotonic() + c.sweep_seconds for n, c in self.channels.items()}
            while not stop.is_set():
                burst: dict[str, set[str]] = {}
                wait = max(0.0, min(1.0, min(next_sweep.values()) - time.monotonic()))
                async for note in conn.notifies(timeout=wait, stop_after=1):
                    burst.setdefault(note.channel, set()).add(note.payload)
                if burst:
                    async for note in conn.notifies(timeout=BATCH_WINDOW, stop_after=1000):
                        burst.setdefault(note.channel, set()).add(note.payload)
                    for name, payloads in burst.items():
                        if name in self.channels:
                            await self.channels[name].wake(payloads)
                for name, channel in self.channels.items():
                    if time.monotonic() >= next_sweep[name]:
                        await channel.sweep(first=False)
                        next_sweep[name] = time.monotonic() + channel.sweep_seconds
                # A dead connection fails the next notifies/execute and ends the session.
                await conn.execute("SELECT 1")


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; returns whether it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
