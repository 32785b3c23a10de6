"""What every feature's contract uses: the task queue, the seller search attribute and the
business error codes (``ApplicationError.type``) no retry can fix."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError

# The one task queue of the worker (workflows and activities).
TASK_QUEUE = "payouts"

# Custom search attribute on every workflow (registered on the server by `payouts run` / the test
# fixtures).
SELLER_ID = SearchAttributeKey.for_keyword("SellerId")

# The stable codes of the marketplace's business errors: never retried.
BUSINESS_ERROR_TYPES = [
    "validation_failed",
    "not_found",
    "seller_not_found",
    "earning_not_found",
    "dispute_not_found",
    "earning_conflict",
    "dispute_conflict",
    "idempotency_conflict",
    "invalid_earning_state",
    "invalid_state_transition",
    "dispute_already_resolved",
    "currency_mismatch",
    "insufficient_balance",
    "unbalanced_transaction",
    "immutable",
]


def first_application_error(err: BaseException) -> ApplicationError | None:
    """The first ``ApplicationError`` behind ``err`` (an activity's or a validator's failure;
    further down the chain are the Python exceptions it was raised from): what carries the
    business error's code, on the workflow side and the caller's alike."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause
        cause = cause.__cause__
    return None
