"""Errors of the marketplace workflows, with the stable codes of the domain errors.

Inside workflows, a business failure is an ``ApplicationError`` whose ``type`` is the code
(``seller_not_found``, ``earning_conflict``, ``hold_not_found``, ``invalid_hold_state``, ...).
Callers of ``workflows.client`` get a ``WorkflowRequestError`` with the same ``code``.
"""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError


class WorkflowRequestError(Exception):
    """A request to a workflow was rejected (validator) or failed (a business error of its
    activity). ``code`` is stable: the API maps it to an HTTP status."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def business_error(err: BaseException) -> ApplicationError:
    """The first ``ApplicationError`` behind ``err`` (an activity's or a validator's failure;
    further down the chain are the Python exceptions it was raised from), as a fresh
    non-retryable ``ApplicationError`` with the same code."""
    found: ApplicationError | None = None
    cause: BaseException | None = err
    while cause is not None and found is None:
        if isinstance(cause, ApplicationError):
            found = cause
        cause = cause.__cause__
    if found is None:
        return ApplicationError(str(err), type="workflow_failed", non_retryable=True)
    return ApplicationError(found.message, type=found.type, non_retryable=True)


def request_error(err: BaseException) -> WorkflowRequestError:
    app = business_error(err)
    return WorkflowRequestError(app.type or "workflow_failed", app.message)
