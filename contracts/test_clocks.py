"""The test clock's advance workflow (id ``test-clock/<clock id>/<n>``, the clock's n-th advance)
and its activities: names, ids, inputs and results.

The workflow keeps a step counter only: the clock's objects and what falls due for them are in
PostgreSQL (``marketplace.test_clocks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

TEST_CLOCK_ADVANCE_WORKFLOW = "TestClockAdvanceWorkflow"
STATE_QUERY = "state"

# Activity names (the workflow calls them by name, never importing the database-bound class).
ADVANCE_TEST_CLOCK = "advance_test_clock"
WAKE_TEST_CLOCK_OBJECTS = "wake_test_clock_objects"

# Continue as new when the server suggests it or the history reaches this many events.
DEFAULT_HISTORY_LIMIT = 2_000


def test_clock_advance_workflow_id(clock_id: str, advance: int) -> str:
    return f"test-clock/{clock_id}/{advance}"


@dataclass
class TestClockAdvanceInput:
    __test__ = False  # no test class for pytest

    clock_id: str
    advance: int
    """Which advance of the clock this is (its ``advance_count`` once recorded)."""
    history_limit: int = DEFAULT_HISTORY_LIMIT
    steps: int = 0
    """Steps taken so far by this advance (runs it continued included): a counter."""


@dataclass
class AdvanceTestClockInput:
    clock_id: str
    advance: int


@dataclass
class AdvanceTestClockResult:
    outcome: str
    """waiting | moved | ready (``marketplace.test_clocks.StepOutcome``)"""
    frozen_time: datetime
    outstanding: int = 0
    """What is due by ``frozen_time`` and not done yet (waiting)."""


@dataclass
class WakeTestClockObjectsInput:
    clock_id: str


@dataclass
class WakeTestClockObjectsResult:
    sellers: int
    wallets: int


@dataclass
class TestClockAdvanceState:
    """What the advance workflow shows of itself (its ``state`` query)."""

    __test__ = False  # no test class for pytest

    clock_id: str
    advance: int
    frozen_time: datetime | None = None
    outcome: str = "starting"
    steps: int = 0
