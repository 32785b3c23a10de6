"""A test clock's advance (id ``test-clock/<clock id>/<n>``, the clock's n-th advance): it moves
the clock's time to the target step by step, in time order, and lets the platform's own
workflows do what falls due at each step.

Each step is one activity (``advance_test_clock``, ``marketplace.test_clocks``): while something
of the clock's objects is due by the clock's time and not done yet, the workflow waits (a short
sleep between looks); once it is all done, the clock moves to the next moment something falls
due (a hold's end, a reserve's release, a lot's expiry), never past the target, and the workflow
wakes the workflows of the objects with something due then (``wake_test_clock_objects``: the
sellers' hold workflows and the wallets' expiry workflows, which take their now from the clock).
With nothing left before the target, the clock is at the target and ``ready``.

The state is a step counter, never a list of objects; the run continues as new before its
history grows large.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.common import ACTIVITY_TIMEOUT, DURABLE_RETRY, history_too_long

with workflow.unsafe.imports_passed_through():
    from contracts.common import BUSINESS_ERROR_TYPES
    from contracts.test_clocks import (
        ADVANCE_TEST_CLOCK,
        STATE_QUERY,
        TEST_CLOCK_ADVANCE_WORKFLOW,
        WAKE_TEST_CLOCK_OBJECTS,
        AdvanceTestClockInput,
        AdvanceTestClockResult,
        TestClockAdvanceInput,
        TestClockAdvanceState,
        WakeTestClockObjectsInput,
        WakeTestClockObjectsResult,
    )

# The first step may run before the request that recorded the advance committed: it is retried
# soon (``advance_not_recorded``), then less often.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=[*BUSINESS_ERROR_TYPES, "test_clock_not_found"],
)
# Between looks at what is due and not done yet: short at first (a hold workflow's turn takes
# milliseconds), longer once it takes a while (a workflow retrying an activity).
POLL_FAST = timedelta(milliseconds=200)
POLL_SLOW = timedelta(seconds=2)
FAST_POLLS = 25
# A wake can be lost (a workflow was just continuing as new): repeated after this many looks.
WAKE_AGAIN_AFTER = 10


@workflow.defn(name=TEST_CLOCK_ADVANCE_WORKFLOW)
class TestClockAdvanceWorkflow:
    __test__ = False  # no test class for pytest

    @workflow.init
    def __init__(self, input: TestClockAdvanceInput) -> None:
        self._input = input
        self._state = TestClockAdvanceState(
            clock_id=input.clock_id, advance=input.advance, steps=input.steps
        )

    @workflow.run
    async def run(self, input: TestClockAdvanceInput) -> TestClockAdvanceState:
        looks = 0  # looks at the same moment while its work is not done
        while True:
            if history_too_long(input.history_limit):
                workflow.continue_as_new(
                    TestClockAdvanceInput(
                        clock_id=input.clock_id,
                        advance=input.advance,
                        history_limit=input.history_limit,
                        steps=self._state.steps,
                    )
                )
            step: AdvanceTestClockResult = await workflow.execute_activity(
                ADVANCE_TEST_CLOCK,
                AdvanceTestClockInput(clock_id=input.clock_id, advance=input.advance),
                result_type=AdvanceTestClockResult,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=STEP_RETRY,
            )
            self._state.steps += 1
            self._state.outcome = step.outcome
            self._state.frozen_time = step.frozen_time
            workflow.set_current_details(
                f"{step.outcome} at {step.frozen_time.isoformat()}"
                + (f" ({step.outstanding} due, not done yet)" if step.outstanding else "")
            )
            if step.outcome == "ready":
                return self._state
            if step.outcome == "moved":
                looks = 0
                await self._wake(input.clock_id)
                continue
            looks += 1
            if looks % WAKE_AGAIN_AFTER == 0:
                await self._wake(input.clock_id)
            await workflow.sleep(POLL_FAST if looks <= FAST_POLLS else POLL_SLOW)

    async def _wake(self, clock_id: str) -> None:
        await workflow.execute_activity(
            WAKE_TEST_CLOCK_OBJECTS,
            WakeTestClockObjectsInput(clock_id=clock_id),
            result_type=WakeTestClockObjectsResult,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DURABLE_RETRY,
        )

    @workflow.query(name=STATE_QUERY)
    def state(self) -> TestClockAdvanceState:
        """The advance's last step: its outcome and the clock's time then."""
        return self._state
