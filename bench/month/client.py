"""The platform's API as the bench sees it: every request timed, counted and retried."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

import httpx

from bench.month.plan import ATTEMPTS, Json

# ---------------------------------------------------------------------------- the API


class Api:
    """The platform's API with the bench's bookkeeping: every request's latency and status by
    phase and kind; 502/503 and connection errors retried with back-off (every request the bench
    sends is keyed or harmless to repeat); anything else unexpected recorded as an error."""

    def __init__(self, base_url: str, key: str, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            limits=limits,
            timeout=120,
        )
        self.slots = asyncio.Semaphore(concurrency)
        self.phase = "setup"
        self.latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.statuses: Counter[tuple[str, str, int]] = Counter()
        self.retries: Counter[str] = Counter()
        self.errors: list[str] = []

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: dict[str, str | int] | None = None,
        expect: tuple[int, ...] = (200, 201),
        allow: tuple[int, ...] = (),
    ) -> httpx.Response | None:
        """The response if its status is in ``expect`` or ``allow``; else None (recorded)."""
        last = ""
        for attempt in range(ATTEMPTS):
            response: httpx.Response | None = None
            async with self.slots:
                started = time.perf_counter()
                try:
                    response = await self.http.request(method, path, json=json, params=params)
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - started
            status = response.status_code if response is not None else 0
            self.latencies[(self.phase, kind)].append(elapsed)
            self.statuses[(self.phase, kind, status)] += 1
            if response is not None and (status in expect or status in allow):
                return response
            if response is None or status in (502, 503):
                self.retries[kind] += 1
                if response is not None:
                    last = f"{status} {response.text[:200]}"
                retry_after = response.headers.get("Retry-After") if response is not None else None
                delay = float(retry_after) if retry_after else min(10.0, 0.5 * 2**attempt)
                await asyncio.sleep(delay)
                continue
            self.errors.append(f"{kind}: {method} {path} -> {status} {response.text[:300]}")
            return None
        self.errors.append(f"{kind}: {method} {path}: gave up after {ATTEMPTS} attempts: {last}")
        return None

    async def json(self, kind: str, path: str, **params: str | int) -> Json | None:
        response = await self.call(kind, "GET", path, params=params or None)
        return None if response is None else dict(response.json())

    async def list_all(self, kind: str, path: str, **params: str | int) -> list[Json] | None:
        """Every item of a paged list (100 a page), or None if a page failed."""
        items: list[Json] = []
        query: dict[str, str | int] = {"per_page": 100, **params}
        while True:
            page = await self.json(kind, path, **query)
            if page is None:
                return None
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["after_cursor"] = page["next_cursor"]

    def requests(self, phase: str | None = None) -> int:
        return sum(n for (p, _, _), n in self.statuses.items() if phase in (None, p))
