"""The whole stack over HTTP (``tests.e2e.conftest``: the API, the platform's worker, the
session's Temporal dev server and PostgreSQL), and helpers to drive a test clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import WorkflowHandle

from api.auth import create_api_key
from tests.e2e.conftest import Stack, stack  # noqa: F401 (a fixture)
from tests.helpers import eventually

START = "2030-01-07T09:00:00+00:00"  # a Monday
HISTORIES = Path(__file__).parent.parent / "workflows" / "histories"


async def record_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With ``RECORD_HISTORIES=1``: keep the workflow's history for the replay tests
    (``tests/workflows/test_replay.py``); re-record only after an intended, compatible change."""
    if os.environ.get("RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.fixture(scope="module")
def test_admin_key(engine: Engine) -> str:
    with engine.begin() as conn:
        key, _ = create_api_key(conn, role="admin", name="test clocks", livemode=False)
    return key


@pytest.fixture
async def admin(stack: Stack, test_admin_key: str) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    """A test-mode admin key: test clocks, and the sellers and wallets on them, are test-mode
    objects (the sellers and wallets these tests make without a clock too)."""
    async with stack.client(test_admin_key) as client:
        yield client


@pytest.fixture
async def live_admin(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    """The stack's live admin key."""
    async with stack.client() as client:
        yield client


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def create_clock(
    client: httpx.AsyncClient, clock_id: str, frozen_time: str = START
) -> dict[str, Any]:
    response = await client.post(
        "/v1/test_clocks",
        json={"id": clock_id, "name": f"Clock {clock_id}", "frozen_time": frozen_time},
    )
    assert response.status_code == 201, response.text
    clock: dict[str, Any] = response.json()
    return clock


async def advance(client: httpx.AsyncClient, clock_id: str, frozen_time: str) -> dict[str, Any]:
    """Advance the clock and wait until it is ready; returns it then."""
    response = await client.post(
        f"/v1/test_clocks/{clock_id}/advance", json={"frozen_time": frozen_time}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "advancing"

    async def ready() -> dict[str, Any]:
        clock: dict[str, Any] = (await client.get(f"/v1/test_clocks/{clock_id}")).json()
        assert clock["status"] == "ready", clock
        return clock

    clock = await eventually(ready, timeout=60, interval=0.1)
    assert at(clock["frozen_time"]) == at(frozen_time)
    return clock
