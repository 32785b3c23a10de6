"""A workflow call past its deadline (``api.workflow_calls.call_workflow``): the client hears a
503 it may retry, and the call itself is not cancelled (every workflow request is keyed, so the
retry joins it): it finishes by itself, and what it answers late is consumed, not left for
asyncio to report as an unretrieved exception."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from api.problems import Problem
from api.workflow_calls import call_workflow


async def test_a_call_past_its_deadline_is_a_503_and_goes_on_to_its_end() -> None:
    finished = asyncio.Event()

    async def slow_request() -> str:
        await asyncio.sleep(0.3)
        finished.set()
        return "done"

    with pytest.raises(Problem) as answer:
        await call_workflow(slow_request(), timeout=0.05)
    assert (answer.value.status, answer.value.code) == (503, "temporal_unavailable")
    assert answer.value.headers["Retry-After"]
    async with asyncio.timeout(2):
        await finished.wait()


async def test_a_late_failure_is_consumed(caplog: pytest.LogCaptureFixture) -> None:
    async def failing_request() -> str:
        await asyncio.sleep(0.1)
        raise RuntimeError("the workflow's activity failed")

    with pytest.raises(Problem):
        await call_workflow(failing_request(), timeout=0.02)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        await asyncio.sleep(0.3)
        gc.collect()
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_an_answer_in_time_is_returned() -> None:
    async def quick_request() -> int:
        return 7

    assert await call_workflow(quick_request(), timeout=1) == 7
