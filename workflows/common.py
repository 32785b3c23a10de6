"""What the workflows share: activity timeouts and retry policies, one activity-call helper,
the history-length check before continue-as-new, and the checks of a request's fields."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.errors import rejected

with workflow.unsafe.imports_passed_through():
    from contracts.common import BUSINESS_ERROR_TYPES
    from contracts.payouts import PAYOUT_BUSINESS_ERROR_TYPES

T = TypeVar("T")

ACTIVITY_TIMEOUT = timedelta(seconds=30)


def business_retry(
    maximum_interval: timedelta,
    *,
    maximum_attempts: int = 0,
    business_errors: list[str] = BUSINESS_ERROR_TYPES,
) -> RetryPolicy:
    """Retry from one second, backing off up to ``maximum_interval`` (``maximum_attempts`` 0:
    no limit); a business error (a domain code) is never retried."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=maximum_interval,
        maximum_attempts=maximum_attempts,
        non_retryable_error_types=business_errors,
    )


# Steps that must happen eventually (money never left half-moved, a due hold posted): retry
# until the database (or the rail) answers.
DURABLE_RETRY = business_retry(timedelta(minutes=1))
PAYOUT_DURABLE_RETRY = business_retry(
    timedelta(minutes=1), business_errors=PAYOUT_BUSINESS_ERROR_TYPES
)
# Someone waits for the answer (an operator's update, a dispute being opened): a few attempts,
# then the caller hears.
REQUEST_RETRY = business_retry(timedelta(seconds=10), maximum_attempts=5)


async def call_activity(
    activity: str,
    arg: Any,
    result_type: type[T],
    retry_policy: RetryPolicy,
    timeout: timedelta = ACTIVITY_TIMEOUT,
) -> T:
    """Run the activity ``activity`` (by name) with one argument and wait for its result."""
    result: T = await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=timeout,
        retry_policy=retry_policy,
    )
    return result


def history_too_long(limit: int) -> bool:
    """Time to continue as new: the server suggests it, or the history reached ``limit`` events."""
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit


def check_order_id(order_id: Any) -> None:
    if not isinstance(order_id, str) or not 1 <= len(order_id) <= 200:
        raise rejected("order_id must be 1-200 characters", "validation_failed")


def check_minor_units(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
        raise rejected(
            f"{name} must be an integer number of minor units >= {low}", "validation_failed"
        )
