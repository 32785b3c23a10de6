"""The whole stack over HTTP: the real API (uvicorn on a free port, in the test's event loop), the
platform's worker (``server.worker.build_worker``) on a task queue of its own, the session's
Temporal dev server (real time) and PostgreSQL. Holds last a few seconds.

``stack.client(key)`` is an ``httpx.AsyncClient`` on the API with that key; ``stack.key(role,
seller_id)`` creates a key directly in the database.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.auth import ApiKeyRole
from tests.api.conftest import make_key
from tests.temporal_env import TEST_REQUEST_TIMEOUT, new_task_queue, running_worker

T = TypeVar("T")


@dataclass
class Stack:
    base_url: str
    engine: Engine
    task_queue: str
    admin_key: str

    def key(self, role: ApiKeyRole, seller_id: str | None = None) -> str:
        return make_key(self.engine, role, seller_id)

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


# Per module, so that its dispatcher of hold wakes is gone before other tests' servers run.
@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, engine: Engine) -> AsyncIterator[Stack]:
    task_queue = new_task_queue("e2e")
    # A loaded test machine may take longer than production's 2 s to answer a workflow call.
    app = create_app(
        engine,
        temporal_client=temporal_env.client,
        workflow_task_queue=task_queue,
        request_timeout=TEST_REQUEST_TIMEOUT,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    async with AsyncExitStack() as exits:
        await exits.enter_async_context(
            running_worker(temporal_env.client, engine, task_queue=task_queue)
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        try:
            yield Stack(
                base_url=f"http://127.0.0.1:{port}",
                engine=engine,
                task_queue=task_queue,
                admin_key=make_key(engine, ApiKeyRole.ADMIN),
            )
        finally:
            server.should_exit = True
            await serving
            sock.close()


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.client() as client:
        yield client


async def create_seller(client: httpx.AsyncClient, seller_id: str, **terms: Any) -> dict[str, Any]:
    body = {"id": seller_id, "name": f"Shop {seller_id}", "currency": "USD", **terms}
    response = await client.post("/v1/sellers", json=body)
    assert response.status_code == 201, response.text
    seller: dict[str, Any] = response.json()
    return seller


async def add_earning(
    client: httpx.AsyncClient, seller_id: str, order_id: str, amount: int, fee: int = 0
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/sellers/{seller_id}/earnings",
        json={"order_id": order_id, "amount": amount, "fee": fee},
    )
    assert response.status_code == 201, response.text
    earning: dict[str, Any] = response.json()
    return earning


async def balances(client: httpx.AsyncClient, seller_id: str) -> dict[str, int]:
    """pending, posted, available amounts and on_hold, in_reserve, in_dispute, over HTTP."""
    response = await client.get(f"/v1/sellers/{seller_id}/balances")
    assert response.status_code == 200, response.text
    body = response.json()
    return {
        "pending": body["pending"]["amount"],
        "posted": body["posted"]["amount"],
        "available": body["available"]["amount"],
        "on_hold": body["on_hold"],
        "in_reserve": body["in_reserve"],
        "in_dispute": body["in_dispute"],
    }


def money(
    pending: int,
    posted: int,
    available: int,
    *,
    on_hold: int = 0,
    in_reserve: int = 0,
    in_dispute: int = 0,
) -> dict[str, int]:
    return {
        "pending": pending,
        "posted": posted,
        "available": available,
        "on_hold": on_hold,
        "in_reserve": in_reserve,
        "in_dispute": in_dispute,
    }
