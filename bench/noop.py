"""The same Temporal server's ceiling: a trivial workflow started and awaited as fast as
``concurrency`` callers can, on a task queue of its own (``bench/payout_run.py``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from temporalio import workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

NOOP_QUEUE = "bench-noop"


@workflow.defn(sandboxed=False)
class NoopWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@dataclass
class Rate:
    count: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


async def bench_noop(address: str, concurrency: int, seconds: float) -> Rate:
    client = await Client.connect(address)
    prefix = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))
    # Until the child worker polls, then a warm-up round (untimed).
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=NOOP_QUEUE),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while not (await client.workflow_service.describe_task_queue(request)).pollers:
        await asyncio.sleep(0.2)

    async def one() -> None:
        await client.execute_workflow(
            NoopWorkflow.run, id=f"noop-{prefix}-{next(counter)}", task_queue=NOOP_QUEUE
        )

    await asyncio.gather(*(one() for _ in range(concurrency * 2)))

    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Rate(len(latencies), time.perf_counter() - started, latencies)


async def noop_worker(address: str) -> None:
    """The child process that runs the no-op workflow (``--noop-worker``)."""
    client = await Client.connect(address)
    async with Worker(client, task_queue=NOOP_QUEUE, workflows=[NoopWorkflow]):
        await asyncio.Event().wait()
