"""On the real dev server: operators find a seller's hold workflow by its SellerId search
attribute, see OpenHolds fall as holds end, and read a summary, with holds of a few seconds."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contracts.common import SELLER_ID
from contracts.holds import OPEN_HOLDS, seller_holds_workflow_id
from marketplace import EarningRequest, Marketplace
from tests.helpers import eventually
from tests.temporal_env import running_worker
from tests.workflows.conftest import balances, create_seller, views


async def test_hold_workflow_is_findable_by_seller_and_counts_open_holds(
    temporal_env: WorkflowEnvironment,
    engine: Engine,
    marketplace: Marketplace,
    uid: str,
    task_queue: str,
) -> None:
    client, seller = temporal_env.client, f"s-{uid}"
    create_seller(engine, marketplace, seller, hold_period=timedelta(seconds=4))
    async with running_worker(client, engine, task_queue=task_queue):
        # One commit of three orders: the turn it wakes counts three holds.
        with engine.begin() as conn:
            marketplace.book_earnings(
                conn,
                [EarningRequest(seller, f"o{i}-{uid}", 1_000, 100) for i in range(3)],
                at_commit=True,
            )
        handle = client.get_workflow_handle(seller_holds_workflow_id(seller))

        async def three_open() -> None:
            try:
                description = await handle.describe()
            except RPCError as err:  # the dispatcher's wake has not started it yet
                raise AssertionError(err.message) from err
            attributes = description.typed_search_attributes
            assert attributes.get(SELLER_ID) == seller
            assert attributes.get(OPEN_HOLDS) == 3

        await eventually(three_open)
        found = [w.id async for w in client.list_workflows(f'SellerId = "{seller}"')]
        assert found == [seller_holds_workflow_id(seller)]

        async def all_posted() -> None:
            assert views(balances(engine, marketplace, seller)) == (2_700, 2_700, 2_700)
            description = await handle.describe()
            assert description.typed_search_attributes.get(OPEN_HOLDS) == 0

        await eventually(all_posted, timeout=30)
        description = await handle.describe()
        assert await description.static_summary() == f"Holds of seller {seller}"
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert metadata.current_details.startswith("0 earnings on hold (0 minor units), 0 reserves")
        assert "3 posted" in metadata.current_details
