"""The Temporal worker: every workflow and activity of the platform on one task queue.

``build_worker`` is the one place a worker is put together, used by ``payouts worker`` and by the
tests. Activities are synchronous (the ledger uses sync SQLAlchemy), so they run in a thread pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.payouts import LazyRail
from activities.registry import build_activities
from contracts.common import TASK_QUEUE
from contracts.webhooks import WebhookRetry
from payment_rail import PaymentRail, open_payment_rail, open_test_payment_rail
from server.dispatcher import Dispatcher, HoldChannel, WalletExpiryChannel, WebhookChannel
from server.settings import get_settings
from server.worker_observability import ActivityObservabilityInterceptor
from workflows.registry import WORKFLOW_RUNNER, WORKFLOWS

log = logging.getLogger(__name__)

# How long a shutting-down worker lets running activities finish before cancelling them.
GRACEFUL_SHUTDOWN = timedelta(seconds=5)


def build_worker(
    client: Client,
    engine: Engine,
    *,
    task_queue: str = TASK_QUEUE,
    workflows: Sequence[type[Any]] | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
    activity_executor: ThreadPoolExecutor | None = None,
    max_concurrent_activities: int = 20,
    rail: PaymentRail | LazyRail | None = None,
    test_rail: PaymentRail | LazyRail | None = None,
) -> Worker:
    """A worker for ``workflows`` and ``activities`` (default: the registries) on ``task_queue``.

    Tests pass their own ``task_queue`` (one per test keeps a shared server's queues apart) and
    may replace activities with stand-ins registered under the same names. Pass
    ``activity_executor`` to own the thread pool (and shut it down); otherwise the worker gets a
    pool of ``max_concurrent_activities`` threads, reclaimed when the process exits.
    ``rail`` is the payment rail the payout activities use (default: ``open_payment_rail()``
    from the ``PAYOUTS_RAIL_*`` settings, opened on first use), ``test_rail`` the one of test-mode
    payouts (default: ``open_test_payment_rail()``, a simulated bank); the poll interval and return
    window come from the settings (``PAYOUTS_RAIL_POLL_SECONDS``, ``PAYOUTS_RETURN_WINDOW``), and
    so do the instant payouts' terms (``PAYOUTS_INSTANT_*``).
    """
    settings = get_settings()
    executor = activity_executor or ThreadPoolExecutor(
        max_workers=max_concurrent_activities, thread_name_prefix="activity"
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS if workflows is None else workflows),
        workflow_runner=WORKFLOW_RUNNER,
        activities=list(
            build_activities(
                engine,
                rail=rail,
                test_rail=test_rail,
                client=client,
                poll_seconds=settings.payouts_rail_poll_seconds,
                return_window_seconds=settings.payouts_return_window * 86_400,
                instant_terms=settings.instant_terms(),
                instant_poll_seconds=settings.payouts_instant_poll_seconds,
                release_window=timedelta(seconds=settings.payouts_hold_release_window),
            )
            if activities is None
            else activities
        ),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        max_cached_workflows=settings.payouts_worker_max_cached_workflows,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        # Log context (workflow_id, seller_id) and outcome counts for every activity.
        interceptors=[ActivityObservabilityInterceptor()],
    )


def build_dispatcher(client: Client, engine: Engine, *, task_queue: str = TASK_QUEUE) -> Dispatcher:
    """The dispatcher that wakes webhook delivery workflows, sellers' hold workflows and wallets'
    expiry workflows (server.dispatcher), with the retry and sweep settings
    (``PAYOUTS_WEBHOOK_*``, ``PAYOUTS_HOLD_SWEEP_SECONDS``, which wallet expiries share)."""
    settings = get_settings()
    return Dispatcher(
        engine,
        [
            WebhookChannel(
                engine,
                client,
                task_queue=task_queue,
                retry=WebhookRetry(
                    initial_seconds=settings.payouts_webhook_retry_initial_seconds,
                    maximum_seconds=settings.payouts_webhook_retry_max_seconds,
                    maximum_attempts=settings.payouts_webhook_max_attempts,
                ),
                sweep_seconds=settings.payouts_webhook_sweep_seconds,
            ),
            HoldChannel(
                engine,
                client,
                task_queue=task_queue,
                sweep_seconds=settings.payouts_hold_sweep_seconds,
            ),
            WalletExpiryChannel(
                engine,
                client,
                task_queue=task_queue,
                sweep_seconds=settings.payouts_hold_sweep_seconds,
            ),
        ],
    )


def has_registrations(engine: Engine) -> bool:
    return bool(WORKFLOWS) or bool(build_activities(engine))


async def run_worker(
    client: Client,
    engine: Engine,
    *,
    stop: asyncio.Event,
    max_concurrent_activities: int = 20,
) -> None:
    """Run the platform's worker until ``stop`` is set, then shut down gracefully: stop polling,
    let running activities finish for up to ``GRACEFUL_SHUTDOWN``, return.
    """
    if not has_registrations(engine):
        # A Temporal worker needs at least one workflow or activity; while the registries are
        # still empty there is nothing to poll for, so idle until told to stop.
        log.warning("no workflows or activities registered; the worker idles")
        await stop.wait()
        return

    rail = LazyRail(open_payment_rail)
    test_rail = LazyRail(open_test_payment_rail)
    dispatcher = build_dispatcher(client, engine)
    dispatching = asyncio.create_task(dispatcher.run(stop), name="dispatcher")
    with ThreadPoolExecutor(max_concurrent_activities, thread_name_prefix="activity") as pool:
        worker = build_worker(
            client,
            engine,
            activity_executor=pool,
            max_concurrent_activities=max_concurrent_activities,
            rail=rail,
            test_rail=test_rail,
        )
        log.info("worker polling task queue %r with %d workflows", TASK_QUEUE, len(WORKFLOWS))
        async with worker:
            await stop.wait()
            log.info("worker shutting down")
    await dispatching
    rail.close()
    test_rail.close()
    log.info("worker stopped")
