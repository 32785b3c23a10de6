"""The activities the worker registers, built once per worker process with its dependencies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from activities.disputes import DisputeActivities
from activities.payout_runs import PayoutRunActivities
from activities.sellers import SellerActivities
from marketplace import Marketplace


def build_activities(engine: Engine) -> list[Callable[..., Any]]:
    """Bound activity methods of the classes that hold the worker's database engine."""
    marketplace = Marketplace()
    sellers = SellerActivities(engine, marketplace)
    disputes = DisputeActivities(engine, marketplace)
    payout_runs = PayoutRunActivities(engine, marketplace)
    return [
        sellers.book_earning,
        sellers.post_earning,
        sellers.cancel_earning,
        sellers.extend_hold,
        sellers.release_reserve,
        disputes.open_dispute,
        disputes.resolve_dispute,
        payout_runs.decide_payout_run,
    ]
