"""The activities the worker registers, built once per worker process with its dependencies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client

from activities.disputes import DisputeActivities
from activities.payout_runs import PayoutRunActivities
from activities.payouts import (
    DEFAULT_INSTANT_POLL_SECONDS,
    DEFAULT_POLL_SECONDS,
    DEFAULT_RETURN_WINDOW_SECONDS,
    LazyRail,
    PayoutActivities,
)
from activities.sellers import DEFAULT_RELEASE_WINDOW, SellerActivities
from activities.test_clocks import TestClockActivities
from activities.wallets import WalletActivities
from activities.webhooks import WebhookActivities
from marketplace import InstantTerms, Marketplace
from observability.metrics import MeteredLedgerService
from payment_rail import PaymentRail, open_payment_rail, open_test_payment_rail


def build_activities(
    engine: Engine,
    *,
    rail: PaymentRail | LazyRail | None = None,
    test_rail: PaymentRail | LazyRail | None = None,
    client: Client | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    return_window_seconds: float = DEFAULT_RETURN_WINDOW_SECONDS,
    release_window: timedelta = DEFAULT_RELEASE_WINDOW,
    instant_terms: InstantTerms | None = None,
    instant_poll_seconds: float = DEFAULT_INSTANT_POLL_SECONDS,
) -> list[Callable[..., Any]]:
    """Bound activity methods of the classes that hold the worker's database engine, payment
    rail (default: ``open_payment_rail()`` from the ``PAYOUTS_RAIL_*`` settings, opened on first
    use), test-mode rail (default: ``open_test_payment_rail()``, a simulated bank, opened on
    first use) and Temporal client (to pause payout schedules)."""
    # Counts ledger writes (observability.metrics), served on the worker's metrics port.
    marketplace = Marketplace(MeteredLedgerService())
    payouts = PayoutActivities(
        engine,
        rail if rail is not None else LazyRail(open_payment_rail),
        test_rail=test_rail if test_rail is not None else LazyRail(open_test_payment_rail),
        marketplace=marketplace,
        client=client,
        poll_seconds=poll_seconds,
        return_window_seconds=return_window_seconds,
        instant_terms=instant_terms,
        instant_poll_seconds=instant_poll_seconds,
    )
    sellers = SellerActivities(engine, marketplace, release_window=release_window)
    disputes = DisputeActivities(engine, marketplace)
    payout_runs = PayoutRunActivities(
        engine,
        marketplace,
        poll_seconds=poll_seconds,
        return_window_seconds=return_window_seconds,
    )
    return [
        sellers.settle_holds,
        sellers.book_earning,
        sellers.post_earning,
        sellers.cancel_earning,
        sellers.extend_hold,
        sellers.release_reserve,
        disputes.open_dispute,
        disputes.resolve_dispute,
        payout_runs.decide_payout_run,
        *payouts.all(),
        *WebhookActivities(engine).all(),
        WalletActivities(engine, marketplace).expire_wallet_lots,
        *TestClockActivities(engine, client).all(),
    ]
