"""Shared fixtures: a real PostgreSQL and real Temporal servers for the whole test session.

``TEST_DATABASE_URL`` set: that server (migrated to head). Unset: an embedded PostgreSQL of the
session's own, in a temporary folder (Unix socket only, so no port is taken).

Temporal (helpers in tests/temporal_env.py; each server starts on first use, on a free port):
``temporal_env`` is the dev server with the custom search attributes, ``temporal_client`` its
client, ``time_skipping_env`` the time-skipping test server (``skipping_env``: for one test, with
the platform's search attributes, its workflows terminated after it), ``task_queue`` a fresh
queue name per test. Async tests and fixtures need no marker (asyncio_mode=auto, one session
event loop).

Domain: ``marketplace`` the domain service, ``uid`` a fresh suffix per test for the ids it creates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from ledger_core import LedgerService
from marketplace import Marketplace
from server.database import EmbeddedPostgres, create_db_engine, migrate
from server.temporal_server import SEARCH_ATTRIBUTES
from tests.temporal_env import (
    RecordStarts,
    SkippingEnv,
    new_task_queue,
    start_dev_server,
    start_time_skipping_server,
)

# Holds of a few seconds post within half a second of their end in tests (a worker built in a
# test reads its release window from the settings; the platform's default is 5 s).
os.environ.setdefault("PAYOUTS_HOLD_RELEASE_WINDOW", "0.5")


def embedded_data_dir(prefix: str) -> Path:
    """A fresh folder for an embedded PostgreSQL's data, outside pytest's temporary tree.

    Run as root, the server runs as its own user and opens the folders above its data for it;
    pytest resets its own tree to 0700 whenever a pytest session starts, which would lock a
    running server out of its files."""
    return Path(tempfile.mkdtemp(prefix=f"payouts-{prefix}-"))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        migrate(external)
        yield external
        return
    folder = embedded_data_dir("test-pg")
    server = EmbeddedPostgres(folder / "data")
    url = server.start()
    migrate(url)
    try:
        yield url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_db_engine(database_url, pool_size=20)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def ledger_service() -> LedgerService:
    return LedgerService()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (real time), shared by the session."""
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, shared by the session. Its clock is global: tests using it
    must not rely on the absolute time, only on durations."""
    env = await start_time_skipping_server()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def registered_time_skipping_env(
    time_skipping_env: WorkflowEnvironment,
) -> WorkflowEnvironment:
    """The time-skipping test server with the platform's search attributes (the Java test server
    accepts only registered ones, starts with none, and cannot list them: registered once per
    session, here)."""
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
    recorder = RecordStarts()
    config = env.client.config()
    config["interceptors"] = [recorder]
    client = Client(**config)
    yield SkippingEnv(env, client)
    for workflow_id in dict.fromkeys(recorder.workflow_ids):
        with contextlib.suppress(RPCError):  # already closed, or never started
            await client.get_workflow_handle(workflow_id).terminate("test finished")


@pytest.fixture
def task_queue() -> str:
    return new_task_queue()


@pytest.fixture(scope="session")
def marketplace() -> Marketplace:
    return Marketplace()


@pytest.fixture
def uid() -> str:
    """A suffix that makes this test's seller, order and dispute ids its own (the database is
    shared by the session)."""
    return uuid.uuid4().hex[:10]
