"""The simulated bank: a real-shaped ``PaymentRail`` that settles payouts after a delay, sends
signed webhooks with retries, and keeps its state in SQLite.

It is the only simulated part of the platform. Run it in-process (``SimulatedBank``, with its own
background thread) or as an HTTP service (``payment_rail.service``, ``python -m payment_rail``)
that the platform reaches with ``HttpPaymentRail`` like any PSP.

Outcomes follow the destination's account number (``TEST_ACCOUNTS``), like a PSP's test bank
accounts, unless a test forces another one (``force_outcome``). Instant payouts
(``RailMethod.INSTANT``) settle ``instant_settle_seconds`` after acceptance (at most 2 s) whatever
``settle_seconds`` is; an account may refuse them (``supports_instant``) or fail them. The test
controls (``SimulatedBankControls``) exist on the in-process bank and, over HTTP, on
``SimulatedBankAdmin``.

Lifecycle of a payout: ``submit_payout`` stores it as ``processing`` with its planned outcome;
``settle_seconds`` (instant: ``instant_settle_seconds``) later (on the bank's clock) it becomes
``paid`` or ``failed``; a payout planned to be returned becomes ``returned`` ``return_seconds``
after it was paid. Each change emits a
``RailEvent``, delivered to the webhook URL with exponential back-off until it is acknowledged
(2xx) or ``webhook_max_attempts`` is reached. A payout's events are delivered in order (a later
one waits while an earlier one is retried); events of different payouts go out concurrently.

The bank's clock is the real clock plus an offset that ``advance_clock`` grows (it is persisted).
Webhook signatures always use the real clock, so receivers can check their tolerance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Protocol

import httpx

from payment_rail.interface import (
    INSTANT_NOT_SUPPORTED,
    SIGNATURE_HEADER,
    BankAccount,
    PaymentRail,
    PayoutRequest,
    PayoutSubmission,
    RailEvent,
    RailEventType,
    RailIdempotencyConflict,
    RailMethod,
    RailPayoutNotFound,
    RailPayoutState,
    RailPayoutStatus,
    RailRejected,
    RailUnavailable,
    request_from_json,
    request_to_json,
    sign_webhook,
)
from payment_rail.settings import RailSettings

logger = logging.getLogger(__name__)

# --- Outcomes and the test accounts ---------------------------------------------------------------


class RailOutcome(StrEnum):
    """What the bank will do with a payout."""

    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"
    """Paid, then returned ``return_seconds`` later."""
    PAID_WITHOUT_WEBHOOK = "paid_without_webhook"
    """Paid, but no webhook is ever sent (only ``get_payout`` tells)."""
    NEVER_SETTLES = "never_settles"
    """Forced only: stays ``processing`` until a test forces another outcome."""
    REJECTED = "rejected"
    """Forced only: ``submit_payout`` raises ``RailRejected`` with the forced code."""


@dataclass(frozen=True)
class AccountScenario:
    """What happens to payouts to one test account number."""

    outcome: RailOutcome
    code: str | None = None
    reason: str | None = None
    supports_instant: bool = True
    """False: an instant payout is refused (``RailRejected``, ``instant_not_supported``)."""
    instant: AccountScenario | None = None
    """What happens to instant payouts instead, if not the same."""


ACCOUNT_PAID = "000123456789"
ACCOUNT_CLOSED = "000111111113"
ACCOUNT_RETURNED = "000111111116"
ACCOUNT_NO_WEBHOOK = "000222222227"
ACCOUNT_NO_INSTANT = "000333333335"
ACCOUNT_INSTANT_FAILS = "000333333338"
TEST_ROUTING_NUMBER = "110000000"
"""A routing number to use with the test accounts (the bank checks only that it has 9 digits)."""

TEST_ACCOUNTS: Mapping[str, AccountScenario] = MappingProxyType(
    {
        ACCOUNT_PAID: AccountScenario(RailOutcome.PAID),
        ACCOUNT_CLOSED: AccountScenario(
            RailOutcome.FAILED, "account_closed", "The destination account is closed."
        ),
        ACCOUNT_RETURNED: AccountScenario(
            RailOutcome.RETURNED,
            "no_account",
            "The receiving bank found no account with this number and returned the funds.",
        ),
        ACCOUNT_NO_WEBHOOK: AccountScenario(RailOutcome.PAID_WITHOUT_WEBHOOK),
        ACCOUNT_NO_INSTANT: AccountScenario(RailOutcome.PAID, supports_instant=False),
        ACCOUNT_INSTANT_FAILS: AccountScenario(
            RailOutcome.PAID,
            instant=AccountScenario(
                RailOutcome.FAILED,
                "instant_declined",
                "The receiving bank declined the real-time payment.",
            ),
        ),
    }
)
"""The test account numbers. Any number not listed is paid (``RailOutcome.PAID``)."""

DEFAULT_FAILURE = ("could_not_process", "The bank could not process the payout.")
DEFAULT_RETURN = ("no_account", "The receiving bank returned the funds.")
DEFAULT_REJECTION = ("invalid_destination", "The bank rejected the payout.")


def scenario_for(account_number: str, method: RailMethod = RailMethod.STANDARD) -> AccountScenario:
    scenario = TEST_ACCOUNTS.get(account_number, AccountScenario(RailOutcome.PAID))
    if method == RailMethod.INSTANT and scenario.instant is not None:
        return scenario.instant
    return scenario


# --- What tests can see ---------------------------------------------------------------------------


class WebhookState(StrEnum):
    PENDING = "pending"
    """Waiting for its next attempt (or for a webhook URL to be set)."""
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    """Acknowledged with a 2xx (as many times as asked: see ``duplicate_webhooks``)."""
    GAVE_UP = "gave_up"
    """Every attempt failed."""
    DROPPED = "dropped"
    """Never sent, on a test's request (``drop_webhooks``)."""
    SUPPRESSED = "suppressed"
    """Never sent: the payout's outcome has no webhook (``redeliver_webhooks`` sends it)."""


@dataclass(frozen=True)
class WebhookRecord:
    event: RailEvent
    state: WebhookState
    deliveries: int
    """How many times the receiver acknowledged it (2 or more: duplicates)."""
    failed_attempts: int
    """Failed attempts of the current delivery (reset after each success)."""
    last_error: str | None


@dataclass(frozen=True)
class SimulatedPayout:
    """Everything the bank knows about one payout (``inspect``)."""

    request: PayoutRequest
    status: RailPayoutStatus
    outcome: RailOutcome
    """The planned (or forced) outcome."""
    submissions: int
    """Accepted ``submit_payout`` calls for this id (the first and every replay)."""
    times_paid: int
    """How many times money actually left the bank for this id (0 or 1, by idempotency)."""
    webhooks: list[WebhookRecord]


class SimulatedBankControls(Protocol):
    """Test controls, in-process (``SimulatedBank``) and over HTTP (``SimulatedBankAdmin``)."""

    def force_outcome(
        self,
        payout_id: str,
        outcome: RailOutcome,
        *,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Decide what happens to a payout not settled yet, before or after it is submitted.
        ``code``/``reason`` default to the outcome's usual ones. ``ValueError`` once settled."""
        ...

    def return_payout(
        self, payout_id: str, *, code: str = "no_account", reason: str | None = None
    ) -> RailPayoutStatus:
        """Return a paid payout now (and send ``payout.returned``). ``ValueError`` unless paid."""
        ...

    def make_unavailable(self, calls: int = 1, *, after_processing: bool = False) -> None:
        """The next ``calls`` calls of ``submit_payout``/``get_payout`` raise ``RailUnavailable``;
        with ``after_processing`` a submission is stored first (a response lost on the way back)."""
        ...

    def settle_now(self, payout_id: str | None = None) -> int:
        """Settle this (or every) processing payout now; returns how many settled."""
        ...

    def advance_clock(self, seconds: float) -> None:
        """Move the bank's clock forward; what falls due happens before this returns."""
        ...

    def drop_webhooks(self, count: int = 1, *, payout_id: str | None = None) -> None:
        """Never send the next ``count`` events (of this payout, or of any)."""
        ...

    def duplicate_webhooks(
        self, count: int = 1, *, payout_id: str | None = None, copies: int = 2
    ) -> None:
        """Deliver each of the next ``count`` events ``copies`` times (same event id)."""
        ...

    def redeliver_webhooks(self, payout_id: str) -> int:
        """Send every event of this payout once more (also dropped or suppressed ones)."""
        ...

    def set_webhook_url(self, url: str | None) -> None: ...

    def inspect(self, payout_id: str) -> SimulatedPayout:
        """Raises ``RailPayoutNotFound``."""
        ...

    def list_payouts(self) -> list[SimulatedPayout]: ...

    def paid_count(self, payout_id: str) -> int:
        """How many times the payout was paid (0 if unknown)."""
        ...


# --- The bank -------------------------------------------------------------------------------------

WebhookTransport = Callable[[bytes, Mapping[str, str]], None]
"""Delivers one webhook (body, headers); raises on failure. Default: POST to the webhook URL."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payouts (
    payout_id TEXT PRIMARY KEY,
    rail_reference TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    plan_code TEXT,
    plan_reason TEXT,
    code TEXT,
    reason TEXT,
    created_at REAL NOT NULL,
    settle_at REAL,
    return_at REAL,
    paid_at REAL,
    failed_at REAL,
    returned_at REAL,
    times_paid INTEGER NOT NULL DEFAULT 0,
    submissions INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    payout_id TEXT NOT NULL REFERENCES payouts (payout_id),
    body BLOB NOT NULL,
    state TEXT NOT NULL,
    copies INTEGER NOT NULL DEFAULT 1,
    deliveries INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_payout ON events (payout_id);
CREATE INDEX IF NOT EXISTS events_due ON events (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS payouts_settle_due ON payouts (status, settle_at);
CREATE INDEX IF NOT EXISTS payouts_return_due ON payouts (status, return_at);
CREATE TABLE IF NOT EXISTS forced_outcomes (
    payout_id TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    code TEXT,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_MAX_BACKOFF_SECONDS = 60.0
_MAX_IDLE_WAIT_SECONDS = 1.0
_CURRENCY = re.compile(r"[A-Z]{3}")
_ACCOUNT_NUMBER = re.compile(r"\d{4,17}")
_ROUTING_NUMBER = re.compile(r"\d{9}")
MAX_PAYOUT_AMOUNT = 10**13
"""The largest amount the bank accepts in one payout (minor units)."""


@dataclass
class _WebhookRule:
    drop: bool
    payout_id: str | None
    remaining: int
    copies: int


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _fingerprint(request: PayoutRequest) -> str:
    """What must match for a replay: the money, where it goes and how (standard payouts keep the
    fingerprint they had before there were methods)."""
    d = request.destination
    material: list[object] = [
        request.amount,
        request.currency,
        d.account_number,
        d.routing_number,
        d.holder_name,
    ]
    if request.method != RailMethod.STANDARD:
        material.append(str(request.method))
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def _validate_destination(d: BankAccount) -> None:
    if not _ACCOUNT_NUMBER.fullmatch(d.account_number):
        raise RailRejected("account_number must be 4-17 digits", code="invalid_destination")
    if not _ROUTING_NUMBER.fullmatch(d.routing_number):
        raise RailRejected("routing_number must be 9 digits", code="invalid_destination")
    if not d.holder_name.strip() or len(d.holder_name) > 140:
        raise RailRejected("holder_name must be 1-140 characters", code="invalid_destination")


def _method(row: sqlite3.Row) -> RailMethod:
    """The method a stored payout was submitted with (rows from before methods: standard)."""
    return RailMethod(json.loads(row["request"]).get("method", RailMethod.STANDARD))


def _validate(request: PayoutRequest) -> None:
    if not request.payout_id or len(request.payout_id) > 255 or not request.payout_id.isprintable():
        raise RailRejected("payout_id must be 1-255 printable characters", code="invalid_request")
    if isinstance(request.amount, bool) or not isinstance(request.amount, int):
        raise RailRejected("amount must be an integer in minor units", code="invalid_amount")
    if not 0 < request.amount <= MAX_PAYOUT_AMOUNT:
        raise RailRejected(
            f"amount must be between 1 and {MAX_PAYOUT_AMOUNT}", code="invalid_amount"
        )
    if not _CURRENCY.fullmatch(request.currency):
        raise RailRejected("currency must be an ISO 4217 code", code="invalid_currency")
    if request.method not in tuple(RailMethod):
        raise RailRejected("method must be standard or instant", code="invalid_request")
    _validate_destination(request.destination)


class SimulatedBank:
    """The simulated bank in-process: a ``PaymentRail`` and ``SimulatedBankControls``.

    ``start()`` (or ``with``) runs its background thread, which settles payouts, returns them and
    delivers webhooks; without it nothing happens by itself, but ``settle_now`` and
    ``advance_clock`` still work (synchronously). Thread-safe.

    ``data_dir``: keep state in ``<data_dir>/rail.sqlite3`` (it survives a restart: unsettled
    payouts settle, undelivered webhooks are sent); None keeps it in memory.
    ``webhook_transport`` replaces the HTTP POST to ``webhook_url`` (e.g. to hand events straight
    to a test); it receives the body and headers and raises to report a failed delivery.
    """

    def __init__(
        self,
        settings: RailSettings | None = None,
        *,
        data_dir: Path | None = None,
        webhook_url: str | None = None,
        webhook_transport: WebhookTransport | None = None,
        delivery_threads: int = 8,
    ) -> None:
        self.settings = settings or RailSettings()
        data_dir = data_dir if data_dir is not None else self.settings.data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                data_dir / "rail.sqlite3", check_same_thread=False, isolation_level=None
            )
            # WAL with synchronous=NORMAL: every commit survives the process being killed (what a
            # restart test does); only a power cut may lose the last ones.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        else:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._kick = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._delivery_threads = delivery_threads
        self._closed = False
        self._webhook_url = webhook_url if webhook_url is not None else self.settings.webhook_url
        self._transport = webhook_transport
        self._http: httpx.Client | None = None
        self._rules: list[_WebhookRule] = []
        self._unavailable_calls = 0
        self._unavailable_after_processing = False
        with self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE key = 'clock_offset'").fetchone()
            self._clock_offset = float(row["value"]) if row else 0.0
            # A delivery cut short by a crash or stop is tried again.
            self._db.execute("UPDATE events SET state = 'pending' WHERE state = 'in_flight'")

    # -- lifecycle --

    def start(self) -> SimulatedBank:
        with self._lock:
            if self._closed:
                raise RuntimeError("the simulated bank is closed")
            if self._thread is None:
                self._executor = ThreadPoolExecutor(
                    self._delivery_threads, thread_name_prefix="rail-webhook"
                )
                self._thread = threading.Thread(
                    target=self._run, name="simulated-bank", daemon=True
                )
                self._thread.start()
        return self

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            if self._http is not None:
                self._http.close()
            self._db.close()

    def __enter__(self) -> SimulatedBank:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- PaymentRail --

    def submit_payout(self, request: PayoutRequest) -> PayoutSubmission:
        return self.submit_payout_detailed(request)[0]

    def submit_payout_detailed(self, request: PayoutRequest) -> tuple[PayoutSubmission, bool]:
        """``submit_payout``, also telling whether it was a replay (for the HTTP service)."""
        with self._lock:
            lose_response = self._take_unavailability()
            _validate(request)
            fingerprint = _fingerprint(request)
            with self._tx():
                row = self._row(request.payout_id)
                replayed = row is not None
                if row is not None:
                    if row["fingerprint"] != fingerprint:
                        raise RailIdempotencyConflict(
                            f"payout {request.payout_id} was submitted with another amount, "
                            "currency or destination"
                        )
                    self._db.execute(
                        "UPDATE payouts SET submissions = submissions + 1 WHERE payout_id = ?",
                        (request.payout_id,),
                    )
                else:
                    self._insert(request, fingerprint)
                row = self._row(request.payout_id)
            assert row is not None
            self._kick.set()
            if lose_response:
                raise RailUnavailable("the bank did not answer in time (simulated)")
            submission = PayoutSubmission(
                payout_id=row["payout_id"],
                rail_reference=row["rail_reference"],
                status=RailPayoutState.PROCESSING,
                amount=row["amount"],
                currency=row["currency"],
                created_at=datetime.fromtimestamp(row["created_at"], UTC),
            )
            return submission, replayed

    def get_payout(self, payout_id: str) -> RailPayoutStatus:
        with self._lock:
            self._take_unavailability()
            with self._tx():
                # Reads see what is due even when the background thread lags (or is not started).
                self._process_due()
                return self._status(self._require(payout_id))

    def supports_instant(self, destination: BankAccount) -> bool:
        if self._closed:
            raise RailUnavailable("the simulated bank is closed")
        _validate_destination(destination)
        return scenario_for(destination.account_number).supports_instant

    # -- controls --

    def force_outcome(
        self,
        payout_id: str,
        outcome: RailOutcome,
        *,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        outcome = RailOutcome(outcome)
        code, reason = self._default_code(outcome, code, reason)
        with self._lock, self._tx():
            self._process_due()
            row = self._row(payout_id)
            if row is not None and row["status"] != RailPayoutState.PROCESSING:
                raise ValueError(f"payout {payout_id} is already {row['status']}")
            if row is not None and outcome == RailOutcome.REJECTED:
                raise ValueError(f"payout {payout_id} was accepted; it can no longer be rejected")
            self._db.execute(
                "INSERT OR REPLACE INTO forced_outcomes VALUES (?, ?, ?, ?)",
                (payout_id, outcome, code, reason),
            )
            if row is not None:
                settle_at = None if outcome == RailOutcome.NEVER_SETTLES else row["settle_at"]
                if settle_at is None and outcome != RailOutcome.NEVER_SETTLES:
                    settle_at = row["created_at"] + self._settle_delay(_method(row))
                self._db.execute(
                    "UPDATE payouts SET outcome = ?, plan_code = ?, plan_reason = ?, "
                    "settle_at = ? WHERE payout_id = ?",
                    (outcome, code, reason, settle_at, payout_id),
                )
            self._process_due()
        self._kick.set()

    def return_payout(
        self, payout_id: str, *, code: str = "no_account", reason: str | None = None
    ) -> RailPayoutStatus:
        with self._lock, self._tx():
            row = self._require(payout_id)
            if row["status"] != RailPayoutState.PAID:
                raise ValueError(f"payout {payout_id} is {row['status']}, not paid")
            self._return(row, self._now(), code, reason or DEFAULT_RETURN[1])
            status = self._status(self._require(payout_id))
        self._kick.set()
        return status

    def make_unavailable(self, calls: int = 1, *, after_processing: bool = False) -> None:
        with self._lock:
            self._unavailable_calls = calls
            self._unavailable_after_processing = after_processing

    def settle_now(self, payout_id: str | None = None) -> int:
        with self._lock, self._tx():
            query = (
                "UPDATE payouts SET settle_at = ? WHERE status = 'processing' "
                "AND settle_at IS NOT NULL"
            )
            args: tuple[Any, ...] = (self._now(),)
            if payout_id is not None:
                query += " AND payout_id = ?"
                args += (payout_id,)
            settled = self._db.execute(query, args).rowcount
            self._process_due()
        self._kick.set()
        return settled

    def advance_clock(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock, self._tx():
            self._clock_offset += seconds
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('clock_offset', ?)", (str(self._clock_offset),)
            )
            self._process_due()
        self._kick.set()

    def drop_webhooks(self, count: int = 1, *, payout_id: str | None = None) -> None:
        with self._lock:
            self._rules.append(_WebhookRule(True, payout_id, count, 0))

    def duplicate_webhooks(
        self, count: int = 1, *, payout_id: str | None = None, copies: int = 2
    ) -> None:
        if copies < 1:
            raise ValueError("copies must be at least 1")
        with self._lock:
            self._rules.append(_WebhookRule(False, payout_id, count, copies))

    def redeliver_webhooks(self, payout_id: str) -> int:
        with self._lock, self._tx():
            self._require(payout_id)
            n = self._db.execute(
                "UPDATE events SET state = 'pending', copies = deliveries + 1, "
                "failed_attempts = 0, next_attempt_at = ? "
                "WHERE payout_id = ? AND state != 'in_flight'",
                (self._now(), payout_id),
            ).rowcount
        self._kick.set()
        return n

    def set_webhook_url(self, url: str | None) -> None:
        with self._lock:
            self._webhook_url = url
        self._kick.set()

    @property
    def webhook_url(self) -> str | None:
        return self._webhook_url

    def inspect(self, payout_id: str) -> SimulatedPayout:
        with self._lock, self._tx():
            self._process_due()
            return self._inspect(self._require(payout_id))

    def list_payouts(self) -> list[SimulatedPayout]:
        with self._lock, self._tx():
            self._process_due()
            rows = self._db.execute("SELECT * FROM payouts ORDER BY created_at, payout_id")
            return [self._inspect(row) for row in rows.fetchall()]

    def paid_count(self, payout_id: str) -> int:
        with self._lock, self._tx():
            self._process_due()
            row = self._row(payout_id)
            return 0 if row is None else int(row["times_paid"])

    def now(self) -> datetime:
        """The bank's clock."""
        return datetime.fromtimestamp(self._now(), UTC)

    # -- internals: state --

    def _settle_delay(self, method: RailMethod) -> float:
        if method == RailMethod.INSTANT:
            return self.settings.instant_settle_seconds
        return self.settings.settle_seconds

    def _now(self) -> float:
        return time.time() + self._clock_offset

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """A SQLite transaction under the lock (nested calls join the outer one)."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _take_unavailability(self) -> bool:
        """Raise ``RailUnavailable`` now, or return True if the response must be lost after
        processing. Callers hold the lock."""
        if self._closed:
            raise RailUnavailable("the simulated bank is closed")
        if self._unavailable_calls <= 0:
            return False
        self._unavailable_calls -= 1
        if self._unavailable_after_processing:
            return True
        raise RailUnavailable("the bank is unavailable (simulated)")

    def _row(self, payout_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM payouts WHERE payout_id = ?", (payout_id,)
        ).fetchone()
        return row

    def _require(self, payout_id: str) -> sqlite3.Row:
        row = self._row(payout_id)
        if row is None:
            raise RailPayoutNotFound(f"no payout {payout_id}")
        return row

    @staticmethod
    def _default_code(
        outcome: RailOutcome, code: str | None, reason: str | None
    ) -> tuple[str | None, str | None]:
        defaults = {
            RailOutcome.FAILED: DEFAULT_FAILURE,
            RailOutcome.RETURNED: DEFAULT_RETURN,
            RailOutcome.REJECTED: DEFAULT_REJECTION,
        }.get(outcome)
        if defaults is None:
            return code, reason
        return code or defaults[0], reason or defaults[1]

    def _insert(self, request: PayoutRequest, fingerprint: str) -> None:
        forced = self._db.execute(
            "SELECT * FROM forced_outcomes WHERE payout_id = ?", (request.payout_id,)
        ).fetchone()
        if forced is not None:
            outcome = RailOutcome(forced["outcome"])
            code, reason = forced["code"], forced["reason"]
        else:
            account_number = request.destination.account_number
            if (
                request.method == RailMethod.INSTANT
                and not scenario_for(account_number).supports_instant
            ):
                raise RailRejected(
                    "the destination account does not take instant payments",
                    code=INSTANT_NOT_SUPPORTED,
                )
            scenario = scenario_for(account_number, request.method)
            outcome, code, reason = scenario.outcome, scenario.code, scenario.reason
        if outcome == RailOutcome.REJECTED:
            raise RailRejected(reason or "rejected", code=code or DEFAULT_REJECTION[0])
        now = self._now()
        settle_at = None if outcome == RailOutcome.NEVER_SETTLES else now
        if settle_at is not None:
            settle_at += self._settle_delay(request.method)
        self._db.execute(
            "INSERT INTO payouts (payout_id, rail_reference, request, fingerprint, amount, "
            "currency, status, outcome, plan_code, plan_reason, created_at, settle_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'processing', ?, ?, ?, ?, ?)",
            (
                request.payout_id,
                f"simpo_{uuid.uuid4().hex[:24]}",
                json.dumps(request_to_json(request)),
                fingerprint,
                request.amount,
                request.currency,
                outcome,
                code,
                reason,
                now,
                settle_at,
            ),
        )

    def _process_due(self) -> None:
        """Settle and return what is due on the bank's clock. Callers hold the lock, in a tx."""
        now = self._now()
        for row in self._db.execute(
            "SELECT * FROM payouts WHERE status = 'processing' AND settle_at <= ? "
            "ORDER BY settle_at",
            (now,),
        ).fetchall():
            self._settle(row)
        for row in self._db.execute(
            "SELECT * FROM payouts WHERE status = 'paid' AND return_at <= ? ORDER BY return_at",
            (now,),
        ).fetchall():
            self._return(row, row["return_at"], row["plan_code"], row["plan_reason"])

    def _settle(self, row: sqlite3.Row) -> None:
        # The payout settles at its scheduled time, even when processed late (clock advanced).
        at = row["settle_at"]
        outcome = RailOutcome(row["outcome"])
        payout_id = row["payout_id"]
        if outcome == RailOutcome.FAILED:
            self._db.execute(
                "UPDATE payouts SET status = 'failed', failed_at = ?, code = ?, reason = ? "
                "WHERE payout_id = ?",
                (at, row["plan_code"], row["plan_reason"], payout_id),
            )
            self._emit(
                payout_id, RailEventType.PAYOUT_FAILED, at, row["plan_code"], row["plan_reason"]
            )
            return
        return_at = at + self.settings.return_seconds if outcome == RailOutcome.RETURNED else None
        self._db.execute(
            "UPDATE payouts SET status = 'paid', paid_at = ?, return_at = ?, "
            "times_paid = times_paid + 1 WHERE payout_id = ?",
            (at, return_at, payout_id),
        )
        self._emit(
            payout_id,
            RailEventType.PAYOUT_PAID,
            at,
            suppressed=outcome == RailOutcome.PAID_WITHOUT_WEBHOOK,
        )
        logger.info("simulated bank paid %s (%s)", payout_id, row["amount"])

    def _return(self, row: sqlite3.Row, at: float, code: str | None, reason: str | None) -> None:
        code = code or DEFAULT_RETURN[0]
        reason = reason or DEFAULT_RETURN[1]
        self._db.execute(
            "UPDATE payouts SET status = 'returned', returned_at = ?, return_at = NULL, "
            "code = ?, reason = ? WHERE payout_id = ?",
            (at, code, reason, row["payout_id"]),
        )
        self._emit(row["payout_id"], RailEventType.PAYOUT_RETURNED, at, code, reason)

    def _emit(
        self,
        payout_id: str,
        type_: RailEventType,
        at: float,
        code: str | None = None,
        reason: str | None = None,
        *,
        suppressed: bool = False,
    ) -> None:
        event = RailEvent(
            id=f"evt_{uuid.uuid4().hex}",
            type=type_,
            payout_id=payout_id,
            occurred_at=datetime.fromtimestamp(at, UTC),
            code=code,
            reason=reason,
        )
        state, copies = (WebhookState.SUPPRESSED if suppressed else WebhookState.PENDING), 1
        if not suppressed:
            rule = self._take_rule(payout_id)
            if rule is not None and rule.drop:
                state = WebhookState.DROPPED
            elif rule is not None:
                copies = rule.copies
        self._db.execute(
            "INSERT INTO events (event_id, payout_id, body, state, copies, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event.id, payout_id, event.to_json(), state, copies, self._now()),
        )

    def _take_rule(self, payout_id: str) -> _WebhookRule | None:
        # A rule for this payout wins over a rule for any payout.
        for rule in sorted(self._rules, key=lambda r: r.payout_id is None):
            if rule.remaining > 0 and rule.payout_id in (None, payout_id):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
                return rule
        return None

    def _status(self, row: sqlite3.Row) -> RailPayoutStatus:
        return RailPayoutStatus(
            payout_id=row["payout_id"],
            rail_reference=row["rail_reference"],
            status=RailPayoutState(row["status"]),
            amount=row["amount"],
            currency=row["currency"],
            created_at=datetime.fromtimestamp(row["created_at"], UTC),
            paid_at=_dt(row["paid_at"]),
            failed_at=_dt(row["failed_at"]),
            returned_at=_dt(row["returned_at"]),
            code=row["code"],
            reason=row["reason"],
        )

    def _inspect(self, row: sqlite3.Row) -> SimulatedPayout:
        events = self._db.execute(
            "SELECT * FROM events WHERE payout_id = ? ORDER BY seq", (row["payout_id"],)
        ).fetchall()
        return SimulatedPayout(
            request=request_from_json(json.loads(row["request"])),
            status=self._status(row),
            outcome=RailOutcome(row["outcome"]),
            submissions=row["submissions"],
            times_paid=row["times_paid"],
            webhooks=[
                WebhookRecord(
                    event=RailEvent.from_json(e["body"]),
                    state=WebhookState(e["state"]),
                    deliveries=e["deliveries"],
                    failed_attempts=e["failed_attempts"],
                    last_error=e["last_error"],
                )
                for e in events
            ],
        )

    # -- internals: the background thread and webhook delivery --

    def _run(self) -> None:
        while not self._stopping.is_set():
            wait = _MAX_IDLE_WAIT_SECONDS
            try:
                wait = self._tick()
            except Exception:
                logger.exception("simulated bank: background step failed")
            self._kick.wait(wait)
            self._kick.clear()

    def _tick(self) -> float:
        """Process what is due, hand due webhooks to the delivery threads, and return how long
        to sleep until the next due time."""
        with self._lock, self._tx():
            self._process_due()
            now = self._now()
            claimed: list[tuple[str, bytes]] = []
            if self._webhook_url is not None or self._transport is not None:
                rows = self._db.execute(
                    # One payout's events go out in order: a later one waits while an earlier
                    # one is pending or in flight (being retried, or duplicated).
                    "SELECT event_id, body FROM events AS e WHERE state = 'pending' "
                    "AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM events AS p "
                    "WHERE p.payout_id = e.payout_id AND p.seq < e.seq "
                    "AND p.state IN ('pending', 'in_flight')) ORDER BY seq",
                    (now,),
                ).fetchall()
                for r in rows:
                    self._db.execute(
                        "UPDATE events SET state = 'in_flight' WHERE event_id = ?", (r["event_id"],)
                    )
                    claimed.append((r["event_id"], r["body"]))
            due = [
                self._db.execute(
                    "SELECT min(settle_at) FROM payouts WHERE status = 'processing'"
                ).fetchone()[0],
                self._db.execute(
                    "SELECT min(return_at) FROM payouts WHERE status = 'paid'"
                ).fetchone()[0],
            ]
            if self._webhook_url is not None or self._transport is not None:
                due.append(
                    self._db.execute(
                        "SELECT min(next_attempt_at) FROM events WHERE state = 'pending'"
                    ).fetchone()[0]
                )
        assert self._executor is not None
        for event_id, body in claimed:
            self._executor.submit(self._deliver, event_id, bytes(body))
        waits = [float(t) - now for t in due if t is not None]
        return max(0.0, min([_MAX_IDLE_WAIT_SECONDS, *waits]))

    def _deliver(self, event_id: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "simulated-bank/1",
            SIGNATURE_HEADER: sign_webhook(self.settings.webhook_secret, int(time.time()), body),
        }
        error: str | None = None
        try:
            self._send(body, headers)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        # close() waits for running deliveries before it closes the database.
        with self._lock, self._tx():
            row = self._db.execute(
                "SELECT * FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is None or row["state"] != WebhookState.IN_FLIGHT:
                return
            if error is None:
                deliveries = row["deliveries"] + 1
                done = deliveries >= row["copies"]
                self._db.execute(
                    "UPDATE events SET deliveries = ?, failed_attempts = 0, state = ?, "
                    "next_attempt_at = ?, last_error = NULL WHERE event_id = ?",
                    (
                        deliveries,
                        WebhookState.DELIVERED if done else WebhookState.PENDING,
                        self._now(),
                        event_id,
                    ),
                )
            else:
                attempts = row["failed_attempts"] + 1
                gave_up = attempts >= self.settings.webhook_max_attempts
                backoff = min(
                    _MAX_BACKOFF_SECONDS,
                    self.settings.webhook_retry_seconds * 2 ** (attempts - 1),
                )
                self._db.execute(
                    "UPDATE events SET failed_attempts = ?, state = ?, next_attempt_at = ?, "
                    "last_error = ? WHERE event_id = ?",
                    (
                        attempts,
                        WebhookState.GAVE_UP if gave_up else WebhookState.PENDING,
                        self._now() + backoff,
                        error,
                        event_id,
                    ),
                )
                logger.info("simulated bank: webhook %s failed (%s)", event_id, error)
        self._kick.set()

    def _send(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self._transport is not None:
            self._transport(body, headers)
            return
        url = self._webhook_url
        if url is None:
            raise RuntimeError("no webhook URL")
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.settings.webhook_timeout_seconds)
            http = self._http
        response = http.post(url, content=body, headers=dict(headers))
        if not response.is_success:
            raise RuntimeError(f"HTTP {response.status_code}")


def wait_for_status(
    rail: PaymentRail,
    payout_id: str,
    status: RailPayoutState,
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> RailPayoutStatus:
    """Poll ``rail.get_payout`` until the payout has ``status``; ``TimeoutError`` otherwise.
    A helper for tests (works with any ``PaymentRail``)."""
    deadline = time.monotonic() + timeout
    while True:
        current: RailPayoutStatus | None = None
        with suppress(RailPayoutNotFound, RailUnavailable):
            current = rail.get_payout(payout_id)
        if current is not None and current.status == status:
            return current
        if time.monotonic() > deadline:
            raise TimeoutError(f"payout {payout_id} is not {status} after {timeout} s: {current}")
        time.sleep(interval)
