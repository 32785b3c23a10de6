"""The error every Temporal call raises for a rejected or failed request, and the one place
that reads Temporal's NOT_FOUND (no such workflow or schedule)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.common import first_application_error

T = TypeVar("T")
D = TypeVar("D")


class WorkflowRequestError(Exception):
    """A request to a workflow was rejected (validator) or failed (a business error of its
    activity). ``code`` is stable: the API maps it to an HTTP status."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def request_error(err: BaseException) -> WorkflowRequestError:
    """The business error behind a failed update or workflow, with its code."""
    found = first_application_error(err)
    if found is None:
        return WorkflowRequestError("workflow_failed", str(err))
    return WorkflowRequestError(found.type or "workflow_failed", found.message)


async def answered(call: Awaitable[T]) -> T:
    """Await an update or a workflow's result; its business failure as ``WorkflowRequestError``."""
    try:
        return await call
    except (WorkflowUpdateFailedError, WorkflowFailureError) as err:
        raise request_error(err) from err


@overload
async def unless_not_found(call: Awaitable[T], otherwise: BaseException) -> T: ...
@overload
async def unless_not_found(call: Awaitable[T], otherwise: D) -> T | D: ...
async def unless_not_found(call: Awaitable[T], otherwise: Any) -> Any:
    """Await a call on a workflow or schedule; if Temporal has none by that id (NOT_FOUND),
    raise ``otherwise`` when it is an exception, else return it. Other errors propagate."""
    try:
        return await call
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        if isinstance(otherwise, BaseException):
            raise otherwise from err
        return otherwise


async def update_with_start(
    client: Client,
    update: str,
    start: WithStartWorkflowOperation[Any, Any],
    result_type: type[T],
    ended: Callable[[], Awaitable[T]],
) -> T:
    """Start the workflow if it does not run and send it ``update`` (its name is its id, so a
    repeat joins the same update); its business failure as ``WorkflowRequestError``. If the
    workflow by that id ran and completed (its id is not reused), ``ended()`` answers instead."""
    try:
        return await answered(
            client.execute_update_with_start_workflow(
                update, start_workflow_operation=start, id=update, result_type=result_type
            )
        )
    except (WorkflowAlreadyStartedError, RPCError) as err:
        if isinstance(err, RPCError) and err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return await ended()
