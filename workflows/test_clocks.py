"""A test clock's advance (id ``test-clock/<clock id>/<n>``, the clock's n-th advance): it moves
the clock's time to the target step by step, in time order, and lets the platform's own
workflows do what falls due at each step.

At each time the clock stops at: (1) while something of the clock's objects is due by then and
not done yet, the workflow looks again after a short sleep (``advance_test_clock``,
``marketplace.test_clocks``); (2) once it is all done, the firings of the sellers' payout
schedules at that time run (``run_test_clock_schedules``: the schedule's own payout-run workflow,
with the firing's time on the clock; ``ready`` does not wait for the bank); (3) the clock moves to
the next moment something falls due (a hold's end, a reserve's release, a lot's expiry, a
firing, a dispute's deadline), never past the target, and the workflow wakes the workflows of the
objects with something due then (``wake_test_clock_objects``: the sellers' hold workflows and the
wallets' expiry workflows, which take their now from the clock, and the disputes whose deadline
passed). With nothing left before the target, the
clock is at the target and ``ready``.

The state is a step counter, never a list of objects; the run continues as new before its
history grows large.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.common import ACTIVITY_TIMEOUT, DURABLE_RETRY, history_too_long

with workflow.unsafe.imports_passed_through():
    from contracts.common import BUSINESS_ERROR_TYPES
    from contracts.test_clocks import (
        ADVANCE_TEST_CLOCK,
        RUN_TEST_CLOCK_SCHEDULES,
        STATE_QUERY,
        TEST_CLOCK_ADVANCE_WORKFLOW,
        WAKE_TEST_CLOCK_OBJECTS,
        AdvanceTestClockInput,
        AdvanceTestClockResult,
        RunTestClockSchedulesInput,
        RunTestClockSchedulesResult,
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
# Runs of the firings at one time wait for their decisions (each a database transaction).
SCHEDULES_TIMEOUT = timedelta(minutes=2)
# A wake can be lost (a workflow was just continuing as new): repeated after this many looks.
WAKE_AGAIN_AFTER = 10


@workflow.defn(name=TEST_CLOCK_ADVANCE_WORKFLOW)
class TestClockAdvanceWorkflow:
    __test__ = False  # no test class for pytest

    @workflow.init
    def __init__(self, input: TestClockAdvanceInput) -> None:
        self._input = input
        self._state = TestClockAdvanceState(
            clock_id=input.clock_id,
            advance=input.advance,
            steps=input.steps,
            payout_runs=input.payout_runs,
        )

    @workflow.run
    async def run(self, input: TestClockAdvanceInput) -> TestClockAdvanceState:
        run_firings = input.run_firings
        while True:
            self._continue_as_new_if_long(input, run_firings)
            # 1. Everything due by the clock's time is done (the objects' workflows do it).
            looks = 0
            while (step := await self._step(input, move=False)).outcome == "waiting":
                self._continue_as_new_if_long(input, run_firings)
                looks += 1
                if looks % WAKE_AGAIN_AFTER == 0:
                    await self._wake(input.clock_id)
                await workflow.sleep(POLL_FAST if looks <= FAST_POLLS else POLL_SLOW)
            if step.outcome == "ready":
                return self._state  # this advance was over (a run continued after its end)
            # 2. The payout schedules' firings at this time run, after what fell due with them
            #    (a hold that ends at 09:00 is paid by the 09:00 payout); at the advance's start
            #    they ran already, with the advance that got the clock here.
            schedules: RunTestClockSchedulesResult = await workflow.execute_activity(
                RUN_TEST_CLOCK_SCHEDULES,
                RunTestClockSchedulesInput(clock_id=input.clock_id, run_due=run_firings),
                result_type=RunTestClockSchedulesResult,
                start_to_close_timeout=SCHEDULES_TIMEOUT,
                retry_policy=DURABLE_RETRY,
            )
            run_firings = False
            self._state.payout_runs += schedules.runs
            # 3. On to the next moment something falls due (or the target: ready); "waiting":
            #    something fell due at this time meanwhile (a booking with no hold), back to 1.
            step = await self._step(input, move=True, scheduled=schedules.next_firing)
            if step.outcome == "ready":
                return self._state
            if step.outcome == "moved":
                run_firings = True
                await self._wake(input.clock_id)

    def _continue_as_new_if_long(self, input: TestClockAdvanceInput, run_firings: bool) -> None:
        """Before the history grows large: the same advance goes on in a new run, with its
        counters (every step is idempotent, so it starts again at step 1)."""
        if history_too_long(input.history_limit):
            workflow.continue_as_new(
                TestClockAdvanceInput(
                    clock_id=input.clock_id,
                    advance=input.advance,
                    history_limit=input.history_limit,
                    steps=self._state.steps,
                    payout_runs=self._state.payout_runs,
                    run_firings=run_firings,
                )
            )

    async def _step(
        self, input: TestClockAdvanceInput, *, move: bool, scheduled: datetime | None = None
    ) -> AdvanceTestClockResult:
        step: AdvanceTestClockResult = await workflow.execute_activity(
            ADVANCE_TEST_CLOCK,
            AdvanceTestClockInput(
                clock_id=input.clock_id, advance=input.advance, move=move, scheduled=scheduled
            ),
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
            + f"; {self._state.payout_runs} payout runs"
        )
        return step

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
