"""The benchmarks' HTTP load generator: wrk (Debian's ``wrk`` package), driven by a Lua script
that the benchmark writes, with its results read back as JSON.

wrk is a C load generator (one event loop per thread, keep-alive connections): on this 2-core
machine it costs far less CPU per request than any Python client would, so it is not what
limits the figures. A benchmark that uses it says so next to its figures with wrk's own CPU time
(``WrkResult.cpu_seconds``, the child's user + system time).

``ensure_wrk()`` installs the package with apt-get when it is missing and this runs as root (the
machines of this project allow it), or says how to.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Appended to every script: counts statuses per thread and prints one JSON line at the end.
_REPORT = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
s2xx, s4xx, s429, s5xx, s503 = 0, 0, 0, 0, 0
function response(status, headers, body)
  if status < 300 then s2xx = s2xx + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else s4xx = s4xx + 1 end
end
function done(summary, latency, requests)
  local c = {s2xx = 0, s4xx = 0, s429 = 0, s5xx = 0, s503 = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + t:get(k) end
  end
  io.write(string.format(
    '\nWRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %f, "errors": %d, "timeouts": %d, ' ..
    '"s2xx": %d, "s4xx": %d, "s429": %d, "s5xx": %d, "s503": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, c.s2xx, c.s4xx, c.s429, c.s5xx, c.s503))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    """Socket errors (connect, read, write) and timeouts."""
    statuses: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    """wrk's own user + system CPU time."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get("s2xx", 0)

    def line(self, unit: str = "req", per: int = 1) -> str:
        s = self.statuses
        return (
            f"{self.rate * per:8.0f} {unit}/s  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms"
            f"  max {self.max_ms:6.0f} ms  ({self.requests} requests: {s.get('s2xx', 0)} 2xx, "
            f"{s.get('s4xx', 0)} 4xx, {s.get('s429', 0)} 429, {s.get('s503', 0)} 503, "
            f"{s.get('s5xx', 0)} other 5xx, {self.errors} socket errors; wrk CPU "
            f"{self.cpu_seconds:.1f} s)"
        )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("  installing Debian's wrk (apt-get install wrk) ...", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "check": True}
        subprocess.run(["apt-get", "update", "-qq"], **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], **quiet)  # type: ignore[call-overload]
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("the benchmarks need wrk: apt-get install wrk")


def run_wrk(
    url: str,
    script: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
    timeout: float = 10.0,
) -> WrkResult:
    """Run wrk against ``url`` with ``script`` (a Lua ``request`` function and what it needs;
    the status counting and the JSON report are added here)."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        path = Path(folder) / "script.lua"
        path.write_text(script + "\n" + _REPORT)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [
                wrk,
                f"-t{min(threads, connections)}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={timeout:.0f}s",
                "-s",
                str(path),
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=data["errors"] + data["timeouts"],
        statuses={k: data[k] for k in ("s2xx", "s4xx", "s429", "s5xx", "s503")},
        cpu_seconds=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for these values
