"""The workflow side of business errors: a failure is an ``ApplicationError`` whose ``type`` is
the domain's stable code (``seller_not_found``, ``earning_conflict``, ``hold_not_found``,
``invalid_hold_state``, ...). Callers (``temporal_calls``) get a ``WorkflowRequestError`` with
the same code."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from contracts.common import first_application_error


def business_error(err: BaseException) -> ApplicationError:
    """The first ``ApplicationError`` behind ``err`` as a fresh non-retryable
    ``ApplicationError`` with the same code (``workflow_failed`` if there is none)."""
    found = first_application_error(err)
    if found is None:
        return ApplicationError(str(err), type="workflow_failed", non_retryable=True)
    return ApplicationError(found.message, type=found.type, non_retryable=True)


def rejected(message: str, code: str) -> ApplicationError:
    """A request refused by a validator or a workflow's own check (never retried)."""
    return ApplicationError(message, type=code, non_retryable=True)
