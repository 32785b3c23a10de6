"""Fixtures for the payment rail tests: fast settings, a real webhook receiver over HTTP, and
a started in-process simulated bank that delivers to it. Nothing here stands in for the rail:
the simulated bank is the thing under test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payment_rail import (
    SIGNATURE_HEADER,
    TEST_ROUTING_NUMBER,
    BankAccount,
    InvalidSignature,
    PayoutRequest,
    RailEvent,
    RailSettings,
    SimulatedBank,
    construct_event,
)
from payment_rail.service import serve_in_thread

SECRET = "whsec_test_secret"


def fast_settings(**overrides: object) -> RailSettings:
    values: dict[str, object] = {
        "settle_seconds": 0.2,
        "return_seconds": 0.4,
        "webhook_secret": SECRET,
        "webhook_retry_seconds": 0.05,
        "webhook_max_attempts": 30,
        "webhook_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return RailSettings.model_validate(values)


def payout(
    payout_id: str, account_number: str = "000123456789", amount: int = 1_500, **kw: object
) -> PayoutRequest:
    return PayoutRequest(
        payout_id=payout_id,
        amount=amount,
        currency="USD",
        destination=BankAccount(account_number, TEST_ROUTING_NUMBER, "Ada Seller"),
        description="Payout",
        **kw,  # type: ignore[arg-type]
    )


def eventually(check: object, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Wait until ``check()`` is truthy (an assertion helper for background effects)."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)


@dataclass
class WebhookReceiver:
    """The platform's side of the webhook, over real HTTP: verifies each signature (400 if bad)
    and records the events it accepts. ``fail_next`` makes it answer 503 that many times."""

    secret: str = SECRET
    events: list[RailEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    fail_next: int = 0
    failures_served: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.failures_served += 1
                return JSONResponse({"error": "down for maintenance"}, 503)
            try:
                event = construct_event(self.secret, request.headers.get(SIGNATURE_HEADER), body)
            except InvalidSignature as exc:
                self.rejected.append(exc.reason)
                return JSONResponse({"error": exc.reason}, 400)
            self.events.append(event)
        return JSONResponse({"received": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/rail/webhooks", self.handle, methods=["POST"])])

    def for_payout(self, payout_id: str) -> list[RailEvent]:
        with self._lock:
            return [e for e in self.events if e.payout_id == payout_id]


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    """A webhook receiver on a free port, and its webhook URL."""
    rec = WebhookReceiver()
    with serve_in_thread(rec.app()) as url:
        yield rec, f"{url}/v1/rail/webhooks"


@pytest.fixture
def bank(receiver: tuple[WebhookReceiver, str]) -> Iterator[SimulatedBank]:
    """A started in-process simulated bank (memory only) that delivers to ``receiver``."""
    with SimulatedBank(fast_settings(), webhook_url=receiver[1]) as b:
        yield b


def free_port() -> int:
    """A port nothing listens on right now (for a receiver that is down, then comes up)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
