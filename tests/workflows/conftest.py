"""Helpers of the workflow tests: sellers in the real database, earnings booked as the API books
them, and balances. (The time-skipping server for one test: ``skipping_env``, tests/conftest.py;
polling for what a worker does asynchronously: ``tests.helpers.eventually``.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine

from marketplace import Earning, Marketplace, RollingReserve, SellerBalances
from tests.temporal_env import SkippingEnv

T = TypeVar("T")


def create_seller(
    engine: Engine,
    marketplace: Marketplace,
    seller_id: str,
    *,
    hold_period: timedelta = timedelta(days=7),
    rolling_reserve: RollingReserve | None = None,
) -> None:
    with engine.begin() as conn:
        marketplace.create_seller(
            conn,
            seller_id=seller_id,
            name=f"Shop {seller_id}",
            currency="USD",
            hold_period=hold_period,
            rolling_reserve=rolling_reserve,
        )


def balances(engine: Engine, marketplace: Marketplace, seller_id: str) -> SellerBalances:
    with engine.begin() as conn:
        return marketplace.seller_balances(conn, seller_id)


def views(b: SellerBalances) -> tuple[int, int, int]:
    """(pending, posted, available)"""
    return (b.pending, b.posted, b.available)


def book(
    engine: Engine,
    marketplace: Marketplace,
    seller: str,
    order: str,
    amount: int,
    fee: int = 0,
    *,
    now: datetime | None = None,
) -> Earning:
    """As ``POST /v1/sellers/{id}/earnings`` does: written with the commit. ``now``: when the
    hold starts (the time-skipping server's clock runs ahead of the wall clock)."""
    with engine.begin() as conn:
        return marketplace.book_earning(
            conn,
            seller_id=seller,
            order_id=order,
            amount=amount,
            fee=fee,
            booked_at=now,
            at_commit=True,
        )


async def book_now(
    env: SkippingEnv,
    engine: Engine,
    marketplace: Marketplace,
    seller: str,
    order: str,
    amount: int,
    fee: int = 0,
) -> Earning:
    """``book`` on the time-skipping server's clock."""
    return book(engine, marketplace, seller, order, amount, fee, now=await env.get_current_time())
