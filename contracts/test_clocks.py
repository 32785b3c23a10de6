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
RUN_TEST_CLOCK_SCHEDULES = "run_test_clock_schedules"

# Continue as new when the server suggests it or the history reaches this many events.
DEFAULT_HISTORY_LIMIT = 2_000


def clock_advance_workflow_id(clock_id: str, advance: int) -> str:
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
    payout_runs: int = 0
    run_firings: bool = False
    """The payout schedules' firings at the clock's time are still to run (a run continued
    after moving the clock; at an advance's start they ran with the advance that got it there)."""


@dataclass
class AdvanceTestClockInput:
    clock_id: str
    advance: int
    move: bool = True
    """False: only look whether everything due by the clock's time is done."""
    scheduled: datetime | None = None
    """The clock's sellers' next payout schedule firing after its time."""


@dataclass
class AdvanceTestClockResult:
    outcome: str
    """waiting | settled | moved | ready (``marketplace.test_clocks.StepOutcome``)"""
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
    disputes: int = 0


@dataclass
class RunTestClockSchedulesInput:
    clock_id: str
    run_due: bool
    """Run the firings at the clock's time (False at an advance's start: they ran already)."""


@dataclass
class RunTestClockSchedulesResult:
    runs: int
    """Payout runs of firings at the clock's time, recorded (started or skipped)."""
    next_firing: datetime | None
    """The first firing after the clock's time of its sellers' schedules (not paused)."""


@dataclass
class TestClockAdvanceState:
    """What the advance workflow shows of itself (its ``state`` query)."""

    __test__ = False  # no test class for pytest

    clock_id: str
    advance: int
    frozen_time: datetime | None = None
    outcome: str = "starting"
    steps: int = 0
    payout_runs: int = 0
