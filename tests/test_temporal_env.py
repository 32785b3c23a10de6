"""The Temporal test infrastructure works: both servers run a workflow through the platform's
worker, the time-skipping server skips a week in well under a second, and the dev server knows
the platform's search attributes."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from sqlalchemy import Engine
    from temporalio.testing import WorkflowEnvironment

    from server.temporal_server import SEARCH_ATTRIBUTES
    from tests.temporal_env import new_task_queue, running_worker


@activity.defn
def shout(text: str) -> str:
    # Synchronous, like the platform's activities: runs in the worker's thread pool.
    return text.upper()


@workflow.defn
class ShoutWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=10)
        )


def shout_worker(
    client: Client, engine: Engine, task_queue: str
) -> AbstractAsyncContextManager[Worker]:
    """The platform's worker with the shout workflow and activity in place of the registries."""
    return running_worker(
        client, engine, task_queue=task_queue, workflows=[ShoutWorkflow], activities=[shout]
    )


@workflow.defn
class WeekLongHoldWorkflow:
    @workflow.run
    async def run(self, days: int) -> float:
        started = workflow.now()
        await workflow.sleep(timedelta(days=days))
        return (workflow.now() - started).total_seconds()


async def test_dev_server_runs_a_workflow_through_the_platform_worker(
    temporal_client: Client, engine: Engine, task_queue: str
) -> None:
    async with shout_worker(temporal_client, engine, task_queue):
        result = await temporal_client.execute_workflow(
            ShoutWorkflow.run, "hello", id=f"shout-{task_queue}", task_queue=task_queue
        )
    assert result == "HELLO"


async def test_time_skipping_server_skips_a_week_in_a_moment(
    time_skipping_env: WorkflowEnvironment, engine: Engine
) -> None:
    client = time_skipping_env.client
    task_queue = new_task_queue()
    async with running_worker(
        client, engine, task_queue=task_queue, workflows=[WeekLongHoldWorkflow], activities=[]
    ):
        # The first workflow task of a worker pays for loading the sandbox: not measured.
        await client.execute_workflow(
            WeekLongHoldWorkflow.run, 1, id=f"warm-up-{task_queue}", task_queue=task_queue
        )
        started = time.monotonic()
        slept = await client.execute_workflow(
            WeekLongHoldWorkflow.run, 7, id=f"hold-{task_queue}", task_queue=task_queue
        )
        wall = time.monotonic() - started
    assert slept >= timedelta(days=7).total_seconds()
    # Not a speed check (typically 0.3-0.4 s): any bound far below a week proves the skip, so
    # take one that a loaded CI machine never reaches.
    assert wall < 120.0, f"a 7-day timer took {wall:.2f}s of wall time"


async def test_dev_server_has_the_platform_search_attributes(temporal_client: Client) -> None:
    response = await temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=temporal_client.namespace)
    )
    registered = dict(response.custom_attributes)
    for key in SEARCH_ATTRIBUTES:
        assert registered.get(key.name) == IndexedValueType.ValueType(key.indexed_value_type)


async def test_workflows_are_found_by_seller_id(
    temporal_client: Client, engine: Engine, task_queue: str
) -> None:
    seller_id = SearchAttributeKey.for_keyword("SellerId")
    assert seller_id in SEARCH_ATTRIBUTES
    async with shout_worker(temporal_client, engine, task_queue):
        await temporal_client.execute_workflow(
            ShoutWorkflow.run,
            "hi",
            id=f"shout-{task_queue}",
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(seller_id, task_queue)]),
        )
    # Visibility is eventually consistent; on the dev server it takes milliseconds.
    query = f"SellerId = '{task_queue}'"
    for _ in range(50):
        found = [wf.id async for wf in temporal_client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [f"shout-{task_queue}"]
