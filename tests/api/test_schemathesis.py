"""Schemathesis against the app's own OpenAPI schema: every operation, valid and invalid input.

The app runs in-process (ASGI) on the session's PostgreSQL, with the session's Temporal dev
server and the platform's worker, so the workflow-backed routes do their real work. Requests carry
an admin key. Each response must not be a server error and must match the schema: a documented
status code, a documented content type and a body that validates (errors are problem+json, see
``api.routing.DOCUMENTED_ERRORS``).

Bounded for CI: ``PAYOUTS_FUZZ_EXAMPLES`` examples per operation (default 15), derandomized so a
run is reproducible. Raise it locally for a deeper search, e.g.
``PAYOUTS_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/api/test_schemathesis.py``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, create_engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.auth import ApiKeyRole
from tests.api.conftest import make_key
from tests.temporal_env import new_task_queue, running_worker

FUZZ_EXAMPLES = int(os.environ.get("PAYOUTS_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class WorkerThread:
    """The platform's worker on an event loop of its own thread: the ASGI client schemathesis uses
    runs the app on yet another loop (a blocking portal), so the pytest loop is not running."""

    def __init__(self, target_host: str, namespace: str, engine: Engine, task_queue: str) -> None:
        self._args = (target_host, namespace, engine, task_queue)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-worker", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        target_host, namespace, engine, task_queue = self._args
        client = await Client.connect(target_host, namespace=namespace)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_worker(client, engine, task_queue=task_queue):
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        assert self._ready.wait(60), "the worker did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *_: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def fuzz_task_queue(temporal_env: WorkflowEnvironment, engine: Engine) -> Iterator[str]:
    queue = new_task_queue("fuzz")
    config = temporal_env.client.service_client.config
    with WorkerThread(config.target_host, temporal_env.client.namespace, engine, queue):
        yield queue


@pytest.fixture(scope="module")
def fuzz_admin_key(engine: Engine) -> str:
    return make_key(engine, ApiKeyRole.ADMIN)


@pytest.fixture(scope="module")
def fuzzed_app(engine: Engine, temporal_env: WorkflowEnvironment, fuzz_task_queue: str) -> FastAPI:
    return create_app(
        engine, temporal_client=temporal_env.client, workflow_task_queue=fuzz_task_queue
    )


# The schema is the app's own; it needs no database, so an engine that never connects serves to
# load it at collection time (one test per operation). The requests go to ``fuzzed_app``.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(create_engine("postgresql+psycopg://schema-only/none"))
)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, fuzzed_app: FastAPI, fuzz_admin_key: str
) -> None:
    case.call_and_validate(
        app=fuzzed_app, headers={"Authorization": f"Bearer {fuzz_admin_key}"}, checks=CHECKS
    )
