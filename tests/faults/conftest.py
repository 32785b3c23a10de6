"""One ``FaultStack`` (tests/faults/harness.py) for the fault-injection tests: every part of the
platform as its own process on free ports, in a folder outside pytest's temporary tree (the
embedded PostgreSQL, run as another user when the tests run as root, must keep reading it).

Each test starts from a stack that is whole again: whatever an earlier, failed test left dead is
restarted first.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator

import pytest

from tests.conftest import embedded_data_dir
from tests.faults.harness import FaultStack


@pytest.fixture(scope="module")
async def fault_stack() -> AsyncIterator[FaultStack]:
    folder = embedded_data_dir("faults")
    stack = FaultStack(folder, admin_key="sk_faults_" + secrets.token_urlsafe(24))
    try:
        stack.start()
        await stack.wait_ready()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def stack(fault_stack: FaultStack) -> FaultStack:
    fault_stack.ensure_running()
    await fault_stack.wait_ready()
    return fault_stack
