"""Helpers of the workflow tests: the time-skipping server for one test, sellers in the real
database, earnings booked as the API books them, and balances. (Polling for what a worker does
asynchronously: ``tests.helpers.eventually``.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from marketplace import Earning, Marketplace, RollingReserve, SellerBalances
from server.temporal_server import SEARCH_ATTRIBUTES

T = TypeVar("T")


class _RecordStarts(Interceptor):
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


@pytest.fixture(scope="session")
async def registered_time_skipping_env(
    time_skipping_env: WorkflowEnvironment,
) -> WorkflowEnvironment:
    """The time-skipping test server with the platform's search attributes (the Java test server
    accepts only registered ones, and starts with none)."""
    await time_skipping_env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=time_skipping_env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type)
                for key in SEARCH_ATTRIBUTES
            },
        )
    )
    return time_skipping_env


@pytest.fixture
async def skipping_env(
    registered_time_skipping_env: WorkflowEnvironment,
) -> AsyncIterator[SkippingEnv]:
    env = registered_time_skipping_env
    recorder = _RecordStarts()
    config = env.client.config()
    config["interceptors"] = [recorder]
    client = Client(**config)
    yield SkippingEnv(env, client)
    for workflow_id in dict.fromkeys(recorder.workflow_ids):
        with contextlib.suppress(RPCError):  # already closed, or never started
            await client.get_workflow_handle(workflow_id).terminate("test finished")


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
