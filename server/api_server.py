"""The HTTP API's server: uvicorn on uvloop and httptools, in ``PAYOUTS_API_WORKERS`` processes.

One worker: ``payouts api`` serves in its own process, as it always did. N > 1: ``payouts api``
binds the listening socket once, starts N worker processes (``python -m server.api_server
--listen-fd FD``) that all accept on it, and supervises them:

- SIGINT or SIGTERM: every worker gets SIGTERM and stops the way uvicorn does (no new
  connections; requests in flight get ``GRACEFUL_SHUTDOWN_SECONDS``); the command exits 0.
- A worker that exits on its own (a crash, a failed start-up) is logged with its exit code, the
  others are stopped, and the command exits 1. It is not restarted: a dying API then reaches
  whoever runs it (``payouts run`` stops the stack and says why; docker-compose's restart policy
  restarts the container and counts it), instead of a crash loop hidden inside the process.
- No orphans: the workers stay in the command's process group (what ``payouts run``, a terminal's
  Ctrl-C or a test's ``killpg`` reaches), and the kernel SIGTERMs them if the command dies
  without cleaning up (``PR_SET_PDEATHSIG``).

Why not uvicorn's own ``workers=N`` supervisor: it restarts a crashed worker (logged at INFO)
forever, exits 0 when its workers could not start, waits for a stopping worker without a time
limit, and installs handlers for ten signals (SIGHUP, SIGQUIT, SIGUSR1, ... among them); and its
synchronous app factory cannot make the lazy Temporal client, which belongs to the worker's event
loop.

Each worker builds what is its own: a SQLAlchemy engine (``PAYOUTS_DB_POOL_SIZE`` per process) and
a lazy Temporal client. The admin key and the embedded PostgreSQL are the parent's business
(``server.cli.cmd_api``, once, before the workers start); it hands them ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from server.processes import parent_death_signal

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI
    from sqlalchemy import Engine

    from server.settings import Settings

# Only the standard library at the top: a worker process installs its signal handlers before it
# imports the rest (worker_main).

log = logging.getLogger("payouts.api_server")

# uvicorn's graceful shutdown: how long requests in flight may take to finish once stopping.
GRACEFUL_SHUTDOWN_SECONDS = 5
# How long a worker may take to stop after SIGTERM (the graceful shutdown, then the lifespan and
# the engine's clean-up) before the supervisor kills it.
WORKER_STOP_TIMEOUT = GRACEFUL_SHUTDOWN_SECONDS + 2.0
# How often the supervisor looks at its workers.
POLL_SECONDS = 0.1
BACKLOG = 2048  # uvicorn's default
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# One server process


@dataclass
class _StopRequest:
    """A SIGINT/SIGTERM that came before uvicorn's own handlers were installed (while the app is
    built), handed on to the server once there is one."""

    requested: bool = False
    server: uvicorn.Server | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True


def install_stop_handlers() -> _StopRequest:
    """Record SIGINT and SIGTERM instead of dying of them. uvicorn installs its own while it
    serves and, when it stopped because of a signal, raises that signal again afterwards: with
    these in place that ends in a normal return (exit 0, clean-ups run), not in death by SIGTERM
    or a KeyboardInterrupt."""
    stop = _StopRequest()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop.handle)
    return stop


def uvicorn_config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.payouts_api_host,
        port=settings.payouts_api_port,
        # Named, not "auto": a missing extra fails at start instead of falling back to asyncio's
        # loop and the pure-Python h11 parser. (serve_api runs the loop; see there.)
        loop="uvloop",
        http="httptools",
        ws="none",  # no WebSocket routes: do not load the websockets library
        log_level=settings.payouts_log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        backlog=BACKLOG,
        # Logging is ours (observability.logs): no uvicorn dictConfig, and the API's request
        # line (api.observability) replaces the access log.
        log_config=None,
        access_log=False,
    )


def serve_api(
    settings: Settings,
    engine: Engine,
    *,
    sockets: list[socket.socket] | None = None,
    stop: _StopRequest | None = None,
) -> None:
    """Serve the API in this process (on ``sockets``, else binding host and port) until SIGINT
    or SIGTERM, then return once uvicorn stopped gracefully."""
    # uvicorn's Server.run() would make the loop from config.loop; the loop is made here instead
    # because the app's Temporal client must be created inside it, before the app (and so the
    # config) exists. Imported directly: no uvloop, no server.
    import uvloop

    stop = stop if stop is not None else install_stop_handlers()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings, engine, sockets, stop))


async def _serve(
    settings: Settings, engine: Engine, sockets: list[socket.socket] | None, stop: _StopRequest
) -> None:
    import uvicorn
    from temporalio.client import Client

    from api.app import create_app
    from server.cli import temporal_address

    # Lazy: the API starts (and serves the ledger) while Temporal is still coming up; the
    # connection is made on the first workflow call.
    temporal = await Client.connect(
        temporal_address(settings), namespace=settings.temporal_namespace, lazy=True
    )
    config = uvicorn_config(
        settings,
        create_app(
            engine,
            temporal_client=temporal,
            key_cache_seconds=settings.payouts_api_key_cache_seconds,
            request_timeout=settings.payouts_api_request_timeout,
            max_in_flight=settings.payouts_api_max_in_flight,
            instant_terms=settings.instant_terms(),
        ),
    )
    config.load()  # imports the protocol now, so the line below names what really serves
    log.info(
        "API server process %d serving on %s loop with %s",
        os.getpid(),
        _qualified_name(type(asyncio.get_running_loop())),
        _qualified_name(config.http_protocol_class),
        extra={
            "pid": os.getpid(),
            "event_loop": _qualified_name(type(asyncio.get_running_loop())),
            "http_protocol": _qualified_name(config.http_protocol_class),
        },
    )
    server = uvicorn.Server(config)
    stop.server = server
    # A signal while the app was being built: start and stop at once (uvicorn skips its main
    # loop when should_exit is already set).
    server.should_exit = stop.requested
    await server.serve(sockets=sockets)


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------------------------------------
# The supervisor (N > 1)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound and listening in the parent, so connections that come while the workers start wait
    in the backlog instead of being refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


def run_api_workers(settings: Settings, database_url: str, count: int) -> int:
    """Serve the API with ``count`` worker processes until SIGINT or SIGTERM (exit 0) or until
    one of them exits on its own (exit 1)."""
    stop = install_stop_handlers()
    try:
        sock = listening_socket(settings.payouts_api_host, settings.payouts_api_port)
    except OSError as exc:
        log.error(
            "the API cannot listen on %s:%d: %s",
            settings.payouts_api_host,
            settings.payouts_api_port,
            exc,
        )
        return 1
    # The workers read their settings from the environment, like any process of the platform;
    # the database is the one this process resolved (possibly the embedded server it attached).
    env = dict(os.environ, DATABASE_URL=database_url)
    workers: list[_Worker] = []
    code = 1  # unless _supervise says otherwise
    try:
        with sock:
            for index in range(1, count + 1):
                if stop.requested:
                    break
                workers.append(_start_worker(index, sock, env))
        # The workers hold the socket; this process accepts nothing.
        log.info(
            "API listening on http://%s:%d with %d worker processes (pids %s)",
            settings.payouts_api_host,
            settings.payouts_api_port,
            len(workers),
            ", ".join(str(w.pid) for w in workers),
        )
        code = _supervise(workers, stop)
    finally:
        # Whatever happened (a signal, a dead worker, an error here), no worker outlives this.
        if not _stop_workers(workers):
            code = 1
    return code


def _start_worker(index: int, sock: socket.socket, env: dict[str, str]) -> _Worker:
    fd = sock.fileno()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.api_server",
            "--listen-fd",
            str(fd),
            "--worker-index",
            str(index),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        pass_fds=(fd,),
        preexec_fn=parent_death_signal(),
    )
    log.info("started API worker process %d (pid %d)", index, process.pid)
    return _Worker(index, process)


def _supervise(workers: list[_Worker], stop: _StopRequest) -> int:
    while not stop.requested:
        for worker in workers:
            code = worker.process.poll()
            if code is not None and not stop.requested:
                log.error(
                    "API worker process %d (pid %d) exited with code %d; stopping the API",
                    worker.index,
                    worker.pid,
                    code,
                    extra={"pid": worker.pid, "exit_code": code},
                )
                return 1
        time.sleep(POLL_SECONDS)
    return 0


def _stop_workers(workers: list[_Worker]) -> bool:
    """SIGTERM every running worker, wait for them, kill what is left; False if one had to be
    killed."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + WORKER_STOP_TIMEOUT
    clean = True
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning(
                "API worker process %d (pid %d) did not stop within %.0fs; killing it",
                worker.index,
                worker.pid,
                WORKER_STOP_TIMEOUT,
            )
            worker.process.kill()
            worker.process.wait()
            clean = False
    if workers:
        log.info("stopped %d API worker processes", len(workers))
    return clean


# ---------------------------------------------------------------------------------------------
# A worker process


def worker_main(argv: Sequence[str] | None = None) -> int:
    """``python -m server.api_server --listen-fd FD``: one worker, started by ``payouts api``."""
    # First, before the slow imports: a stop during start-up must not kill it half way.
    stop = install_stop_handlers()
    parser = argparse.ArgumentParser(prog="python -m server.api_server")
    parser.add_argument("--listen-fd", type=int, required=True, help="the shared socket")
    parser.add_argument("--worker-index", type=int, default=0, help="for the logs")
    args = parser.parse_args(argv)

    from server.cli import configure_process_logging
    from server.database import create_api_engine
    from server.settings import get_settings

    settings = get_settings()
    configure_process_logging(settings)
    if not settings.database_url:
        log.error("DATABASE_URL is not set: API worker processes are started by `payouts api`")
        return 2
    sock = socket.socket(fileno=args.listen_fd)
    engine = create_api_engine(
        settings.database_url,
        pool_size=settings.payouts_db_pool_size,
        request_timeout=settings.payouts_api_request_timeout,
    )
    try:
        serve_api(settings, engine, sockets=[sock], stop=stop)
    finally:
        engine.dispose()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
