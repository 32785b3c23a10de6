"""``/v1/test_clocks``: test clocks, a time of their own for the sellers and wallets created on
them (``test_clock`` on ``POST /v1/sellers`` and ``POST /v1/wallets``), and their advances.

An advance is recorded in the request's own database transaction (the clock turns
``advancing`` with its target) and the clock's advance workflow (``test-clock/<id>/<n>``) is
started; the request answers at once (202). The workflow moves the clock through every moment
something of its objects falls due, in order, through the platform's own workflows, and the clock
is ``ready`` once it reached the target. Test-mode platform keys (admin, operator) only: a live
key gets a 403 ``test_mode_only``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.dependencies import DbConnection
from api.modes import TestModeOnly
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate
from api.routing import ApiRoute
from api.schemas.common import ListResponse
from api.schemas.test_clocks import TestClockAdvance, TestClockCreate, TestClockOut
from api.scoping import PlatformAccess
from api.workflow_calls import WorkflowsDep
from marketplace.test_clocks import TestClocks
from temporal_calls.test_clocks import start_test_clock_advance

router = APIRouter(
    prefix="/v1/test_clocks",
    tags=["test clocks"],
    route_class=ApiRoute,
    dependencies=[PlatformAccess, TestModeOnly],
)
clocks = TestClocks()


@router.post(
    "",
    status_code=201,
    responses={200: {"model": TestClockOut, "description": "The clock existed as asked."}},
)
def create_test_clock(
    body: TestClockCreate, conn: DbConnection, response: Response
) -> TestClockOut:
    """A clock at ``frozen_time``. Without an ``id`` one is generated (``clock_...``). The same
    request again returns the clock (200); the same id with other attributes is a 409
    ``test_clock_exists``."""
    clock, created = clocks.create_clock(
        conn,
        clock_id=body.id,
        name=body.name,
        frozen_time=body.frozen_time,
        metadata=dict(body.metadata),
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/test_clocks/{clock.id}"
    return TestClockOut.model_validate(clock)


@router.get("")
def list_test_clocks(
    conn: DbConnection,
    response: Response,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[TestClockOut]:
    """Test clocks by id."""
    after = decode_key_cursor("test_clocks", after_cursor)
    page = clocks.list_clocks(conn, after=after, limit=per_page)
    return paginate(response, "test_clocks", page, per_page, TestClockOut)


@router.get("/{clock_id}")
def get_test_clock(clock_id: str, conn: DbConnection) -> TestClockOut:
    """The clock: its time, and ``advancing`` (with ``advance_to``) or ``ready``."""
    return TestClockOut.model_validate(clocks.get_clock(conn, clock_id))


@router.delete("/{clock_id}")
def delete_test_clock(clock_id: str, conn: DbConnection) -> TestClockOut:
    """Delete a clock without sellers or wallets (409 ``test_clock_in_use``: their money is in
    the ledger, so they are not deleted with it) that is not advancing (409
    ``test_clock_advancing``)."""
    return TestClockOut.model_validate(clocks.delete_clock(conn, clock_id))


@router.post(
    "/{clock_id}/advance",
    status_code=202,
    responses={200: {"model": TestClockOut, "description": "This advance was under way already."}},
)
async def advance_test_clock(
    clock_id: str,
    body: TestClockAdvance,
    conn: DbConnection,
    calls: WorkflowsDep,
    response: Response,
) -> TestClockOut:
    """Advance the clock to ``frozen_time`` (later than the clock's: 422
    ``test_clock_time_not_later`` otherwise; at most 366 days ahead). Answers at once with the
    clock ``advancing`` (202); poll ``GET /v1/test_clocks/{id}`` until it is ``ready``. While it
    advances, another target is a 409 ``test_clock_advancing``; the same one again answers 200
    (and makes sure its workflow runs)."""
    clock, started = await run_in_threadpool(
        clocks.request_advance, conn, clock_id, body.frozen_time
    )
    # Started before this transaction commits: the workflow's first step waits for the commit
    # (it reads the target from the database); if the commit fails, it gives up after a while.
    await calls.call(
        lambda client: start_test_clock_advance(
            client, clock.id, clock.advance_count, task_queue=calls.task_queue
        )
    )
    if not started:
        response.status_code = 200
    response.headers["Location"] = f"/v1/test_clocks/{clock.id}"
    return TestClockOut.model_validate(clock)
