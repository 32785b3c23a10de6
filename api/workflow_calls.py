"""Calling the workflows from the API: the Temporal client of the app, and one wrapper that turns
every way a workflow call can fail into a problem.

* a rejected or failed request (``WorkflowRequestError``, e.g. a validator's ``invalid_hold_state``)
  becomes the problem of its code (``api.problems.DOMAIN_ERROR_STATUS``);
* Temporal out of reach (connection refused, unavailable, no answer within
  ``WORKFLOW_CALL_TIMEOUT``) is a 503 ``temporal_unavailable`` with ``Retry-After``: every
  workflow request is keyed (order id, dispute id, update id), so retrying it is safe.

Endpoints that call workflows are ``async def`` and run their database work through
``run_in_threadpool``, so neither a Temporal round trip nor a query blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from temporalio.client import Client, RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.problems import Problem, domain_error_status
from contracts.common import TASK_QUEUE
from temporal_calls.errors import WorkflowRequestError

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a request waits for a workflow's answer by default: an operator's update is one
# activity (milliseconds); this bounds a request while Temporal or every worker is down or slow.
# The app caps it at three quarters of its request timeout (api.routing.Admission).
WORKFLOW_CALL_TIMEOUT = 1.5
RETRY_AFTER = {"Retry-After": "2"}
_TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
    }
)


def _unavailable(detail: str) -> Problem:
    return Problem(503, "temporal_unavailable", detail, headers=RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class Workflows:
    """The app's Temporal client and task queue, for an endpoint to call ``temporal_calls``
    with. Without a client (``create_app`` got none) every call is a 503; the endpoint's own
    checks (404s, 409s) still answer first."""

    client: Client | None
    task_queue: str
    timeout: float = WORKFLOW_CALL_TIMEOUT

    async def call(
        self, request: Callable[[Client], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        if self.client is None:
            raise _unavailable("This API runs without a Temporal connection; workflows are off.")
        return await call_workflow(request(self.client), timeout=timeout or self.timeout)


async def get_workflows(request: Request) -> Workflows:
    client = getattr(request.app.state, "temporal_client", None)
    queue = getattr(request.app.state, "workflow_task_queue", None)
    admission = getattr(request.app.state, "admission", None)
    budget = getattr(admission, "request_timeout", None)
    return Workflows(
        client=client if isinstance(client, Client) else None,
        task_queue=queue if isinstance(queue, str) else TASK_QUEUE,
        timeout=budget * 0.75 if isinstance(budget, float | int) else WORKFLOW_CALL_TIMEOUT,
    )


WorkflowsDep = Annotated[Workflows, Depends(get_workflows)]


def _drop_late_answer(request: asyncio.Future[Any]) -> None:
    """The answer of a workflow request the client was told to retry (it is keyed, so the
    retry finds what it did): consumed, logged."""
    if not request.cancelled() and request.exception() is not None:
        log.info("a workflow request answered 503 failed afterwards: %r", request.exception())


async def call_workflow(call: Awaitable[T], *, timeout: float = WORKFLOW_CALL_TIMEOUT) -> T:
    """Await a ``temporal_calls`` call; every failure becomes a ``Problem``. Past ``timeout``
    the call is left to finish by itself instead of being cancelled: cancelling the SDK in the
    middle of an update-with-start leaves a future of its own unanswered (an asyncio ERROR per
    call), and the request is keyed, so the client's retry joins it anyway."""
    request = asyncio.ensure_future(call)
    try:
        try:
            await asyncio.wait((request,), timeout=timeout)
        finally:
            if not request.done():  # past the deadline, or this request itself was cancelled
                request.add_done_callback(_drop_late_answer)
        if not request.done():
            raise TimeoutError
        return request.result()
    except WorkflowRequestError as err:
        status = domain_error_status(err.code)
        if status is None:
            # Not a business answer: an activity kept failing (database down, say). The request
            # is keyed, so a retry is safe.
            log.warning("workflow request failed: %s: %s", err.code, err.message)
            raise Problem(
                503,
                "workflow_failed",
                # The cause is an internal error (it may name hosts or sockets): logged, not
                # shown.
                "The workflow could not complete the request; retrying it is safe.",
                headers=RETRY_AFTER,
            ) from err
        raise Problem(status, err.code, err.message, **err.details) from err
    except (TimeoutError, RPCTimeoutOrCancelledError) as err:
        raise _unavailable(
            f"Temporal did not answer within {timeout:.0f} s (is a worker running?); "
            "retrying the request is safe."
        ) from err
    except RPCError as err:
        if err.status in _TRANSIENT:
            raise _unavailable(f"Temporal is not reachable: {err.message}") from err
        log.error("Temporal refused a request: %s (%s)", err.message, err.status)
        raise Problem(
            502, "temporal_error", f"Temporal refused the request: {err.message}"
        ) from err
    except RuntimeError as err:
        # A lazy client that cannot connect raises "Failed client connect: ...".
        if "client connect" not in str(err):
            raise
        raise _unavailable("Temporal is not reachable; retrying the request is safe.") from err
