"""``payouts run`` end to end: the real launcher, embedded PostgreSQL, Temporal dev server, worker
and API, on a temporary data folder and free ports. It comes up, serves, stops every process it
started on Ctrl-C and on SIGTERM, keeps its data across a restart, and stops everything when a
child dies. The API runs as ``API_WORKERS`` worker processes on uvloop and httptools."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import embedded_data_dir

pytestmark = pytest.mark.slow

# Generous: on a loaded 2-CPU machine three Python processes importing at once take a while.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
# The banner prints the key on the line after "Admin API key".
KEY_PATTERN = re.compile(r"Admin API key.*\n\s+(\S+)")
# PAYOUTS_API_WORKERS of every stack here: more than one, whatever the machine's CPU count.
API_WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    output: Path
    data_dir: Path
    api_url: str
    ui_url: str

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)


@dataclass
class StackConfig:
    data_dir: Path
    api_port: int
    temporal_port: int
    ui_port: int

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "PAYOUTS_ADMIN_API_KEY")
        }
        env.update(
            PAYOUTS_DATA_DIR=str(self.data_dir),
            PAYOUTS_API_PORT=str(self.api_port),
            PAYOUTS_TEMPORAL_PORT=str(self.temporal_port),
            PAYOUTS_TEMPORAL_UI_PORT=str(self.ui_port),
            PAYOUTS_API_WORKERS=str(API_WORKERS),
            PAYOUTS_LOG_FORMAT="json",  # the tests read log lines
            PYTHONUNBUFFERED="1",
        )
        return env


@pytest.fixture
def stack_config() -> Iterator[StackConfig]:
    folder = embedded_data_dir("test-stack")
    yield StackConfig(folder / "data", free_port(), free_port(), free_port())
    shutil.rmtree(folder, ignore_errors=True)


def start_stack(config: StackConfig, output: Path) -> RunningStack:
    payouts = Path(sys.executable).parent / "payouts"
    with output.open("wb") as out:
        # A session of its own, like a command in a terminal: a Ctrl-C is SIGINT to its group.
        process = subprocess.Popen(
            [str(payouts), "run"],
            env=config.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = RunningStack(
        process,
        output,
        config.data_dir,
        api_url=f"http://127.0.0.1:{config.api_port}",
        ui_url=f"http://127.0.0.1:{config.ui_port}",
    )
    deadline = time.monotonic() + START_TIMEOUT
    while "Press Ctrl-C" not in stack.text():
        if process.poll() is not None:
            pytest.fail(f"payouts run exited with {process.returncode}:\n{stack.text()}")
        if time.monotonic() > deadline:
            stop_stack(stack)
            pytest.fail(f"payouts run did not come up in {START_TIMEOUT}s:\n{stack.text()}")
        time.sleep(0.2)
    return stack


def stop_stack(
    stack: RunningStack, sig: signal.Signals = signal.SIGTERM
) -> tuple[int, float, list[psutil.Process]]:
    """SIGTERM the launcher, or SIGINT its process group as a terminal's Ctrl-C does; return its
    exit code, how long it took, and its former children."""
    children = stack.descendants()
    started = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(stack.process.pid, signal.SIGINT)
    else:
        stack.process.send_signal(sig)
    try:
        code = stack.process.wait(timeout=STOP_TIMEOUT + 30)
    finally:
        if stack.process.poll() is None:
            stack.process.kill()
    return code, time.monotonic() - started, children


def api_processes(stack: RunningStack) -> tuple[psutil.Process, list[psutil.Process]]:
    """``payouts api`` and its worker processes."""
    api = next(
        p
        for p in stack.descendants()
        if [Path(a).name for a in p.cmdline()[-2:]] == ["payouts", "api"]
    )
    return api, api.children()


def log_records(stack: RunningStack) -> list[dict[str, object]]:
    """The JSON log lines of every process of the stack (their stderr is the launcher's)."""
    records = []
    for line in stack.text().splitlines():
        if line.startswith("{"):
            with suppress(ValueError):
                records.append(json.loads(line))
    return records


def assert_api_runs_workers(stack: RunningStack, port: int) -> None:
    """``payouts api`` runs API_WORKERS worker processes that hold the listening socket (it holds
    none: they serve every request) and that each say they serve on uvloop with httptools. That
    line names the running loop's class and the protocol class uvicorn loaded, in the process
    with that pid."""
    api, workers = api_processes(stack)
    assert len(workers) == API_WORKERS, [w.cmdline() for w in workers]
    assert all("server.api_server" in w.cmdline() for w in workers)

    def listens(process: psutil.Process) -> bool:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port
            for c in process.net_connections(kind="tcp")
        )

    assert not listens(api)
    assert all(listens(w) for w in workers)

    pids = {w.pid for w in workers}
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        serving = {
            r["pid"]: r
            for r in log_records(stack)
            if r.get("logger") == "payouts.api_server" and "event_loop" in r
        }
        if pids <= serving.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert pids <= serving.keys(), f"not every worker process serves:\n{stack.text()}"
    for pid in pids:
        assert serving[pid]["event_loop"] == "uvloop.Loop", serving[pid]
        assert serving[pid]["http_protocol"] == (
            "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol"
        ), serving[pid]


def processes_using(data_dir: Path) -> list[psutil.Process]:
    """PostgreSQL or Temporal processes whose command line names ``data_dir``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline:
            found.append(proc)
    return found


def assert_nothing_left(children: list[psutil.Process], data_dir: Path) -> None:
    survivors = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"children still running: {survivors}"
    # PostgreSQL is started by pg_ctl (not a child of the launcher): look it up by data dir.
    deadline = time.monotonic() + 5
    while processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(data_dir) == []


@pytest.fixture
def launch(stack_config: StackConfig, tmp_path: Path) -> Iterator[Callable[[str], RunningStack]]:
    """Starts the stack, its output in ``log_name`` in the test's folder; whatever a failing
    test leaves running is stopped."""
    stacks: list[RunningStack] = []

    def start(log_name: str) -> RunningStack:
        stack = start_stack(stack_config, tmp_path / log_name)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        if stack.process.poll() is None:
            stop_stack(stack)


def test_run_serves_stops_cleanly_and_keeps_data(
    stack_config: StackConfig, launch: Callable[[str], RunningStack]
) -> None:
    first = launch("first.log")
    text = first.text()
    keys = KEY_PATTERN.findall(text)
    assert len(keys) == 1, f"the admin key is printed once on first start:\n{text}"
    admin = {"Authorization": f"Bearer {keys[0]}"}
    assert f"{first.api_url}/docs" in text
    assert first.ui_url in text

    with httpx.Client(base_url=first.api_url, timeout=10) as http:
        assert http.get("/docs").status_code == 200
        assert http.post("/v1/ledgers", json={"name": "x", "currency": "USD"}).status_code == 401
        created = http.post(
            "/v1/ledgers", json={"name": "Persisted", "currency": "EUR"}, headers=admin
        )
        assert created.status_code == 201, created.text
        ledger_id = created.json()["id"]
    assert httpx.get(first.ui_url, timeout=10).status_code == 200

    commands = [" ".join(p.cmdline()) for p in first.descendants()]
    for part in ("temporal server start-dev", "payouts worker", "payouts api"):
        assert any(part in command for command in commands), commands
    assert_api_runs_workers(first, stack_config.api_port)

    code, took, children = stop_stack(first, signal.SIGINT)  # Ctrl-C
    assert code == 0, first.text()
    assert took < STOP_TIMEOUT, f"stopping took {took:.1f}s"
    assert "stopped." in first.text()
    assert_nothing_left(children, stack_config.data_dir)

    second = launch("second.log")
    assert KEY_PATTERN.findall(second.text()) == [], "an existing admin key is not printed again"
    with httpx.Client(base_url=second.api_url, timeout=10) as http:
        read = http.get(f"/v1/ledgers/{ledger_id}", headers=admin)
        assert read.status_code == 200, read.text
        assert read.json()["name"] == "Persisted"

    code, took, children = stop_stack(second)
    assert code == 0
    assert took < STOP_TIMEOUT
    assert_nothing_left(children, stack_config.data_dir)


def test_a_crashed_child_stops_the_stack(
    stack_config: StackConfig, launch: Callable[[str], RunningStack]
) -> None:
    stack = launch("crash.log")
    children = stack.descendants()
    worker = next(p for p in children if "worker" in p.cmdline())
    worker.kill()

    code = stack.process.wait(timeout=STOP_TIMEOUT + 30)
    assert code != 0
    assert "worker" in stack.text() and "exited with code" in stack.text()
    assert_nothing_left(children, stack_config.data_dir)


def test_a_crashed_api_worker_process_stops_the_api_and_the_stack(
    stack_config: StackConfig, launch: Callable[[str], RunningStack]
) -> None:
    """One of the API's worker processes dies: `payouts api` stops the other and exits 1 (it
    does not restart it), and so the launcher stops everything, as for any crashed part."""
    stack = launch("crash-api.log")
    children = stack.descendants()
    api, workers = api_processes(stack)
    victim = workers[0]
    victim.kill()

    code = stack.process.wait(timeout=STOP_TIMEOUT + 30)
    assert code != 0
    text = stack.text()
    assert f"(pid {victim.pid}) exited with code -9; stopping the API" in text, text
    assert f"api (pid {api.pid}) exited with code 1" in text, text
    assert_nothing_left(children, stack_config.data_dir)
