"""Fixtures of the webhook tests: a receiver (a real HTTP server on a free port) that records
what it gets and answers as told, endpoints deleted after each test (the database is shared by
the session, and a live endpoint subscribed to everything would get every later test's events),
and helpers to read the outbox."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, text

from marketplace import Marketplace, RollingReserve
from marketplace.webhooks import WebhookEndpoint, Webhooks


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """Answers ``fail_next`` requests with 500 (all of them while ``down``), then 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    fail_next: int = 0
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            if self.down or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                self.refused += 1
                return 500
            self.received.append(Received(body, headers))
            return 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.answer(body, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def no_other_endpoints(engine: Engine) -> None:
    """Delete the live endpoints other tests left (the schemathesis run creates some): each
    webhook test sees only its own endpoints' deliveries and notifications, and its
    dispatcher's first sweep wakes no stranger's stream."""
    hooks = Webhooks()
    while True:
        with engine.begin() as conn:
            live = [e.id for e in hooks.list_endpoints(conn, limit=1000).items]
            for endpoint_id in live:
                hooks.delete_endpoint(conn, endpoint_id)
        if len(live) < 1000:
            return


@pytest.fixture
def endpoints(engine: Engine) -> Iterator[list[WebhookEndpoint]]:
    """Endpoints a test creates (append them); deleted afterwards."""
    created: list[WebhookEndpoint] = []
    yield created
    with engine.begin() as conn:
        for endpoint in created:
            Webhooks().delete_endpoint(conn, endpoint.id)


def new_seller(
    engine: Engine,
    *,
    hold: timedelta = timedelta(0),
    reserve: RollingReserve | None = None,
) -> str:
    seller_id = f"wh-{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        Marketplace().create_seller(
            conn,
            seller_id=seller_id,
            name="Webhook test",
            currency="USD",
            hold_period=hold,
            rolling_reserve=reserve,
        )
    return seller_id


def seller_events(engine: Engine, seller_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(sequence, type, data) of the seller's events in sequence order."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT sequence, type, data FROM events WHERE seller_id = :s ORDER BY sequence"),
            {"s": seller_id},
        ).all()
    return [(r.sequence, r.type, r.data) for r in rows]
