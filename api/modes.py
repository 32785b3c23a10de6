"""Live and test mode: where a request's API key decides which objects it may see.

Every object is live or test. The flag is stored on the roots (ledgers, sellers, wallets, webhook
endpoints, events) and everything else takes its root's mode (a payout its seller's, an entry its
ledger's, a delivery its event's). A live key reads and writes live objects only, a test key
test-mode objects only; to a key, the other mode's objects do not exist.

This module applies that in one place for every route of ``ApiRoute``
(``api.routing.run_unit_of_work`` calls ``enter_mode`` once the key is known, and every route
depends on ``check_path_objects`` after its role checks):

* the request's mode (``request_livemode``) is the key's, for the lists (the domain reads take a
  ``livemode`` filter), for creating objects, and for the ``livemode`` of every response object
  (``api.schemas.common.ModeField``: the object's own flag where it has one, else its root's,
  which is the key's mode since the key sees no other);
* an object named in the path (``/v1/sellers/{seller_id}/...``, ``/v1/payouts/{payout_id}``, ...)
  whose root is of the other mode, or that does not exist, answers the 404 of an unknown one,
  code and message alike, after the role checks and before the query and body are validated.
  An object's mode never changes, so it is remembered per process (``ModeCache``): a hot route
  (booking, balances) pays a dictionary lookup, not a query.

Objects named in a request body (a batch of earnings, a dispute's seller, a transfer's wallets, a
ledger transaction's ledger) are checked by the route with the domain read of that object, given
the request's mode.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine, text
from sqlalchemy.sql.elements import TextClause
from starlette.concurrency import run_in_threadpool

from api.auth import ApiKeyRecord, CurrentPrincipal
from api.problems import Problem
from ledger_core.errors import NotFound
from marketplace import (
    dispute_not_found,
    event_not_found,
    payout_not_found,
    seller_not_found,
    wallet_not_found,
)
from marketplace.errors import wallet_transfer_not_found
from marketplace.webhooks import delivery_not_found, endpoint_not_found

_LIVEMODE = contextvars.ContextVar[bool | None]("api_request_livemode", default=None)


def request_livemode() -> bool:
    """The mode of the request being served (its key's). Outside a request: live."""
    mode = _LIVEMODE.get()
    return True if mode is None else mode


@dataclass(frozen=True, slots=True)
class PathRoot:
    """How a path parameter's object finds its mode, and its 404."""

    query: TextClause
    not_found: Callable[[str], Exception]
    is_uuid: bool = False


def _ledger_resource(what: str, resource: str) -> Callable[[str], Exception]:
    def not_found(value: str) -> Exception:
        return NotFound(f"{what} {uuid.UUID(value)} not found", resource=resource)

    return not_found


# Each path parameter that names an object: the mode of its root, by the object's key.
PATH_ROOTS: dict[str, PathRoot] = {
    "seller_id": PathRoot(text("SELECT livemode FROM sellers WHERE id = :id"), seller_not_found),
    "wallet_id": PathRoot(text("SELECT livemode FROM wallets WHERE id = :id"), wallet_not_found),
    "payout_id": PathRoot(
        text(
            "SELECT s.livemode FROM payouts p JOIN sellers s ON s.id = p.seller_id WHERE p.id = :id"
        ),
        payout_not_found,
    ),
    "dispute_id": PathRoot(
        text(
            "SELECT s.livemode FROM disputes d JOIN sellers s ON s.id = d.seller_id "
            "WHERE d.id = :id"
        ),
        dispute_not_found,
    ),
    "event_id": PathRoot(text("SELECT livemode FROM events WHERE id = :id"), event_not_found),
    "endpoint_id": PathRoot(
        text("SELECT livemode FROM webhook_endpoints WHERE id = :id"), endpoint_not_found
    ),
    "delivery_id": PathRoot(
        text(
            "SELECT e.livemode FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.id = :id"
        ),
        delivery_not_found,
    ),
    "transfer_id": PathRoot(
        text(
            "SELECT w.livemode FROM wallet_transfers t JOIN wallets w ON w.id = t.from_wallet_id "
            "WHERE t.id = :id"
        ),
        wallet_transfer_not_found,
    ),
    "ledger_id": PathRoot(
        text("SELECT livemode FROM ledgers WHERE id = :id"),
        _ledger_resource("ledger", "ledger"),
        is_uuid=True,
    ),
    "ledger_account_id": PathRoot(
        text(
            "SELECT l.livemode FROM ledger_accounts a JOIN ledgers l ON l.id = a.ledger_id "
            "WHERE a.id = :id"
        ),
        _ledger_resource("ledger account", "account"),
        is_uuid=True,
    ),
    "ledger_transaction_id": PathRoot(
        text(
            "SELECT l.livemode FROM ledger_transactions t JOIN ledgers l ON l.id = t.ledger_id "
            "WHERE t.id = :id"
        ),
        _ledger_resource("ledger transaction", "transaction"),
        is_uuid=True,
    ),
}

# Path parameters that name something inside an object named before them in the same path (an
# order of /v1/sellers/{seller_id}, a top-up of /v1/wallets/{wallet_id}): the route finds them
# within that object, so its root's check covers them.
WITHIN_ROOT = frozenset({"order_id", "top_up_id", "spend_id"})

# Paths of live money only: a test key gets a 403 ``live_mode_only`` (see ``LiveModeOnly``).
LIVE_ONLY_PARAMS = frozenset({"statement_id"})
# Paths of test mode only (test clocks): a live key gets a 403 ``test_mode_only``
# (``TestModeOnly``).
TEST_ONLY_PARAMS = frozenset({"clock_id"})


class ModeCache:
    """The mode of objects looked up by path, per process (an object's mode never changes)."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._modes: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()

    def get(self, param: str, value: str) -> bool | None:
        return self._modes.get((param, value))

    def put(self, param: str, value: str, livemode: bool) -> None:
        with self._lock:
            if len(self._modes) >= self.size:
                self._modes.clear()
            self._modes[(param, value)] = livemode


def _lookup(conn: Connection, root: PathRoot, key: str) -> bool | None:
    found = conn.execute(root.query, {"id": key}).scalar_one_or_none()
    return None if found is None else bool(found)


def _lookup_in_own_connection(engine: Engine, root: PathRoot, key: str) -> bool | None:
    with engine.connect() as conn:
        return _lookup(conn, root, key)


def _key(root: PathRoot, value: str) -> str | None:
    """The object's key as its table has it (None: no id a table can hold: the route answers)."""
    if not root.is_uuid:
        if "\x00" in value or len(value) > 255:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def enter_mode(principal: ApiKeyRecord) -> None:
    """Set the request's mode to its key's. Called by ``ApiRoute`` for every request, once
    authenticated."""
    _LIVEMODE.set(principal.livemode)


async def check_path_objects(request: Request) -> None:
    """Refuse an object named in the path that is of the other mode, or unknown, with the 404
    of an unknown object: the same answer for both, so a key cannot tell that the other mode has
    it. ``ApiRoute`` runs it after the route's role checks (a role that may not do this gets its
    403 whatever the object) and before the query and body are validated (a 422 for one and a
    404 for the other would tell them apart)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, ApiKeyRecord):
        return
    cache: ModeCache = request.app.state.mode_cache
    for param, value in request.path_params.items():
        root = PATH_ROOTS.get(param)
        key = _key(root, value) if root is not None and isinstance(value, str) else None
        if root is None or key is None:
            continue
        livemode = cache.get(param, key)
        if livemode is None:
            engine = request.app.state.engine
            livemode = await run_in_threadpool(_lookup_in_own_connection, engine, root, key)
            if livemode is None:
                raise root.not_found(value)
            cache.put(param, key, livemode)
        if livemode != principal.livemode:
            raise root.not_found(value)


@dataclass(frozen=True, slots=True)
class NamedObjects:
    """The same check for an object a request names in its body (``NamedObjectsDep``)."""

    cache: ModeCache
    livemode: bool

    def check(self, conn: Connection, param: str, value: str) -> None:
        """An object of the other mode named ``value`` (a ``PATH_ROOTS`` kind: ``ledger_id``,
        ``seller_id``, ``wallet_id`` ...): the 404 of an unknown one. Unknown: nothing here
        (the write that uses it answers its own 404)."""
        root = PATH_ROOTS[param]
        key = _key(root, value)
        if key is None:
            return
        livemode = self.cache.get(param, key)
        if livemode is None:
            livemode = _lookup(conn, root, key)
            if livemode is None:
                return
            self.cache.put(param, key, livemode)
        if livemode != self.livemode:
            raise root.not_found(value)


async def named_objects(request: Request, principal: CurrentPrincipal) -> NamedObjects:
    return NamedObjects(request.app.state.mode_cache, principal.livemode)


NamedObjectsDep = Annotated[NamedObjects, Depends(named_objects)]


def _only_in(livemode: bool, code: str, detail: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing (403 ``code``) a key of the other mode than ``livemode``."""

    async def require(request: Request) -> None:
        principal = getattr(request.state, "principal", None)
        if isinstance(principal, ApiKeyRecord) and principal.livemode != livemode:
            raise Problem(403, code, detail)

    return require


# Routes of live money only (bank statements): a test key gets a 403.
LiveModeOnly = Depends(
    _only_in(
        True,
        "live_mode_only",
        "Bank statement reconciliation is about live money only; use a live key.",
    )
)
# Routes of test mode only (test clocks): a live key gets a 403.
TestModeOnly = Depends(
    _only_in(
        False, "test_mode_only", "Test clocks are test-mode objects; use a test key (sk_test_...)."
    )
)


async def key_livemode(principal: CurrentPrincipal) -> bool:
    """The request's mode (its key's): what a list shows and what a create makes."""
    return principal.livemode


KeyMode = Annotated[bool, Depends(key_livemode)]
"""The request's mode, for an endpoint: ``livemode: KeyMode``."""
