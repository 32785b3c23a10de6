"""Helpers for the child processes the commands start (``payouts run``'s parts, the API's
worker processes)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGTERM the child when its parent dies (Linux), so
    a parent killed without cleaning up leaves no child behind."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent_pid = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def payouts_command(*args: str) -> list[str]:
    """The command line of ``payouts ARGS`` for a child process: the installed ``payouts`` script
    beside this interpreter (so ``ps`` shows ``payouts worker``), else ``python -m server``."""
    script = Path(sysconfig.get_path("scripts")) / "payouts"
    if script.is_file():
        return [sys.executable, str(script), *args]
    return [sys.executable, "-m", "server", *args]
