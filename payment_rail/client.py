"""``HttpPaymentRail``: the ``PaymentRail`` over HTTP (the rail's API as ``payment_rail.service``
serves it), and ``SimulatedBankAdmin``: the simulated bank's test controls over HTTP.

The client does not retry: a transport error, a timeout or a 5xx becomes ``RailUnavailable`` and
the caller (a Temporal activity) retries with the same payout id, which the rail deduplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from payment_rail.interface import (
    BankAccount,
    PayoutRequest,
    PayoutSubmission,
    RailError,
    RailIdempotencyConflict,
    RailPayoutNotFound,
    RailPayoutStatus,
    RailRejected,
    RailUnavailable,
    account_to_json,
    request_to_json,
    status_from_json,
    submission_from_json,
)
from payment_rail.simulated import RailOutcome, SimulatedPayout

T = TypeVar("T")
_PAYOUT = TypeAdapter(SimulatedPayout)
_PAYOUTS = TypeAdapter(list[SimulatedPayout])


class _HttpClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "payouts-platform"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self._http.request(method, path, json=json, headers=headers)
        except httpx.TransportError as exc:  # connect errors, timeouts, broken connections
            raise RailUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise RailUnavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            body = response.json() if response.content else None
        except ValueError as exc:
            raise RailUnavailable(f"{method} {path}: the response is not JSON") from exc
        if response.is_success:
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = error.get("code") if isinstance(error, dict) else None
        message = (
            error.get("message") if isinstance(error, dict) else None
        ) or f"HTTP {response.status_code}"
        status = response.status_code
        exc_type: type[RailError]
        if status == 404 and code == RailPayoutNotFound.code:
            exc_type = RailPayoutNotFound
        elif status == 409:
            exc_type = RailIdempotencyConflict
        else:  # 400, 401, or a 404 that is no payout's (a wrong base URL): permanent
            exc_type = RailRejected
        raise exc_type(message, code=code if isinstance(code, str) else None)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class HttpPaymentRail(_HttpClient):
    """The ``PaymentRail`` over HTTP. Thread-safe (one pooled ``httpx.Client``).

    ``transport`` is for tests that route requests elsewhere; the default is the network."""

    def submit_payout(self, request: PayoutRequest) -> PayoutSubmission:
        body = self._call(
            "POST",
            "/v1/payouts",
            json=request_to_json(request),
            headers={"Idempotency-Key": request.payout_id},
        )
        return self._parse(submission_from_json, body)

    def get_payout(self, payout_id: str) -> RailPayoutStatus:
        body = self._call("GET", f"/v1/payouts/{quote(payout_id, safe='')}")
        return self._parse(status_from_json, body)

    def supports_instant(self, destination: BankAccount) -> bool:
        body = self._call("POST", "/v1/instant_eligibility", json=account_to_json(destination))
        instant = body.get("instant") if isinstance(body, dict) else None
        if not isinstance(instant, bool):
            raise RailUnavailable(f"unexpected response from the rail: {body!r}")
        return instant

    @staticmethod
    def _parse(parse: Callable[[Any], T], body: Any) -> T:
        try:
            return parse(body)
        except ValidationError as exc:
            # A garbled answer from the rail: as good as none; retrying is safe (idempotent).
            raise RailUnavailable(f"unexpected response from the rail: {exc}") from exc


class SimulatedBankAdmin(_HttpClient):
    """The simulated bank's test controls (``SimulatedBankControls``) over HTTP."""

    def force_outcome(
        self,
        payout_id: str,
        outcome: RailOutcome,
        *,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        self._call(
            "POST",
            "/admin/force_outcome",
            json={"payout_id": payout_id, "outcome": outcome, "code": code, "reason": reason},
        )

    def return_payout(
        self, payout_id: str, *, code: str = "no_account", reason: str | None = None
    ) -> RailPayoutStatus:
        body = self._call(
            "POST", "/admin/return", json={"payout_id": payout_id, "code": code, "reason": reason}
        )
        return status_from_json(body)

    def make_unavailable(self, calls: int = 1, *, after_processing: bool = False) -> None:
        self._call(
            "POST",
            "/admin/unavailable",
            json={"calls": calls, "after_processing": after_processing},
        )

    def settle_now(self, payout_id: str | None = None) -> int:
        return int(self._call("POST", "/admin/settle", json={"payout_id": payout_id})["settled"])

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "/admin/clock/advance", json={"seconds": seconds})

    def drop_webhooks(self, count: int = 1, *, payout_id: str | None = None) -> None:
        self._call("POST", "/admin/webhooks/drop", json={"count": count, "payout_id": payout_id})

    def duplicate_webhooks(
        self, count: int = 1, *, payout_id: str | None = None, copies: int = 2
    ) -> None:
        self._call(
            "POST",
            "/admin/webhooks/duplicate",
            json={"count": count, "payout_id": payout_id, "copies": copies},
        )

    def redeliver_webhooks(self, payout_id: str) -> int:
        body = self._call("POST", "/admin/webhooks/redeliver", json={"payout_id": payout_id})
        return int(body["events"])

    def set_webhook_url(self, url: str | None) -> None:
        self._call("PUT", "/admin/webhook_url", json={"url": url})

    def inspect(self, payout_id: str) -> SimulatedPayout:
        return _PAYOUT.validate_python(
            self._call("GET", f"/admin/payouts/{quote(payout_id, safe='')}")
        )

    def list_payouts(self) -> list[SimulatedPayout]:
        return _PAYOUTS.validate_python(self._call("GET", "/admin/payouts"))

    def paid_count(self, payout_id: str) -> int:
        try:
            return self.inspect(payout_id).times_paid
        except RailPayoutNotFound:
            return 0
