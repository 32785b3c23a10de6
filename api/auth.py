"""API keys: creation, bootstrap of the first admin key, authentication and role checks.

A key is ``sk_live_`` or ``sk_test_`` followed by 43 URL-safe random characters (256 bits); only
its SHA-256 is stored, with its first characters for display. A live key reads and writes live
objects only, a test key test-mode objects only (``api.modes``); keys made before test mode
(plain ``sk_...``) and the configured admin key are live. A request authenticates with
``Authorization: Bearer <key>``; ``ApiRoute`` does that before anything else and leaves the key's
record on the request, where the ``CurrentPrincipal`` dependency and ``require_roles`` find it.

Roles: ``admin`` may do everything; ``operator`` everything on the ledger endpoints (later issues
narrow some actions); ``seller`` keys are scoped to a seller id and, until sellers get routes of
their own, may only read; ``wallet`` keys likewise are scoped to one wallet and only read it.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.engine import Row

from api.problems import Problem
from api.tables import api_keys
from ledger_core.ids import uuid7

KEY_PREFIX = "sk_"  # every key's; keys made before test mode have only this (live)
LIVE_KEY_PREFIX = "sk_live_"
TEST_KEY_PREFIX = "sk_test_"
DISPLAY_PREFIX_LENGTH = 12
MIN_CONFIGURED_KEY_LENGTH = 24
ADMIN_BOOTSTRAP_LOCK_ID = 7_340_002

# Documents the scheme in OpenAPI (/docs "Authorize"); ApiRoute does the actual check.
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")


class ApiKeyRole(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    SELLER = "seller"
    WALLET = "wallet"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored API key (never its plaintext). The principal of an authenticated request."""

    id: uuid.UUID
    name: str
    role: ApiKeyRole
    seller_id: str | None
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    wallet_id: str | None = None
    """The wallet a wallet key reads (None for every other role)."""
    livemode: bool = True
    """Live key (live objects only) or test key (test-mode objects only)."""


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_api_key(*, livemode: bool = True) -> str:
    return (LIVE_KEY_PREFIX if livemode else TEST_KEY_PREFIX) + secrets.token_urlsafe(32)


def parse_mode(mode: str) -> bool:
    """``live`` or ``test`` as ``livemode``."""
    if mode not in ("live", "test"):
        raise ValueError(f"mode must be live or test; got {mode!r}")
    return mode == "live"


def _record(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        role=ApiKeyRole(row.role),
        seller_id=row.seller_id,
        key_prefix=row.key_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        wallet_id=row.wallet_id,
        livemode=row.livemode,
    )


def _insert_key(
    conn: Connection,
    *,
    key: str,
    role: ApiKeyRole,
    seller_id: str | None,
    name: str,
    wallet_id: str | None = None,
    livemode: bool = True,
) -> ApiKeyRecord:
    row = conn.execute(
        api_keys.insert()
        .values(
            id=uuid7(),
            name=name,
            role=str(role),
            seller_id=seller_id,
            wallet_id=wallet_id,
            key_prefix=key[:DISPLAY_PREFIX_LENGTH],
            key_hash=hash_api_key(key),
            created_at=datetime.now(UTC),
            livemode=livemode,
        )
        .returning(*api_keys.c)
    ).one()
    return _record(row)


def create_api_key(
    conn: Connection,
    *,
    role: ApiKeyRole | str,
    seller_id: str | None = None,
    name: str,
    wallet_id: str | None = None,
    livemode: bool = True,
) -> tuple[str, ApiKeyRecord]:
    """Create a key in the caller's transaction; returns its plaintext (shown once) and record.

    A seller key needs ``seller_id`` and a wallet key ``wallet_id``; no other key has either.
    ``livemode`` False: a test key (``sk_test_...``), which sees test-mode objects only.
    """
    try:
        key_role = ApiKeyRole(role)
    except ValueError:
        raise ValueError(
            f"role must be one of admin, operator, seller, wallet; got {role!r}"
        ) from None
    if not name.strip():
        raise ValueError("an API key needs a name")
    if key_role is ApiKeyRole.SELLER and not (seller_id and seller_id.strip()):
        raise ValueError("a seller key needs a seller id")
    if key_role is not ApiKeyRole.SELLER and seller_id is not None:
        raise ValueError(f"an {key_role} key is not scoped to a seller; omit the seller id")
    if key_role is ApiKeyRole.WALLET and not (wallet_id and wallet_id.strip()):
        raise ValueError("a wallet key needs a wallet id")
    if key_role is not ApiKeyRole.WALLET and wallet_id is not None:
        raise ValueError(f"{key_role} keys are not scoped to a wallet; omit the wallet id")
    key = generate_api_key(livemode=livemode)
    return key, _insert_key(
        conn,
        key=key,
        role=key_role,
        seller_id=seller_id,
        wallet_id=wallet_id,
        name=name,
        livemode=livemode,
    )


def revoke_api_key(conn: Connection, key_id: uuid.UUID) -> ApiKeyRecord:
    """Revoke a key (it is kept, so its idempotency records stay attributable)."""
    row = conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id)
        .values(revoked_at=datetime.now(UTC))
        .returning(*api_keys.c)
    ).one_or_none()
    if row is None:
        raise LookupError(f"no API key {key_id}")
    return _record(row)


def list_api_keys(conn: Connection, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return [_record(r) for r in conn.execute(query)]


def ensure_admin_key(engine: Engine, configured: str | None) -> str | None:
    """Make sure an admin can log in; returns a new key's plaintext only if one was created.

    ``configured`` (``PAYOUTS_ADMIN_API_KEY``) set: its hash is registered as an admin key if it
    is not yet, and None is returned (the operator knows the key). Unset: if no active admin key
    exists, one is created and its plaintext returned for the launcher to print once.
    Safe when several processes start at once (an advisory lock serialises them).
    """
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADMIN_BOOTSTRAP_LOCK_ID})
        if configured is not None:
            if len(configured) < MIN_CONFIGURED_KEY_LENGTH:
                raise ValueError(
                    f"PAYOUTS_ADMIN_API_KEY must be at least {MIN_CONFIGURED_KEY_LENGTH} "
                    "characters of random data"
                )
            existing = conn.execute(
                select(api_keys).where(api_keys.c.key_hash == hash_api_key(configured))
            ).one_or_none()
            if existing is None:
                _insert_key(
                    conn,
                    key=configured,
                    role=ApiKeyRole.ADMIN,
                    seller_id=None,
                    name="PAYOUTS_ADMIN_API_KEY",
                )
            elif existing.role != ApiKeyRole.ADMIN or existing.revoked_at is not None:
                raise ValueError(
                    "PAYOUTS_ADMIN_API_KEY is registered as a revoked or non-admin key; "
                    "configure another one"
                )
            return None
        active_admin = conn.execute(
            select(api_keys.c.id)
            .where(
                api_keys.c.role == str(ApiKeyRole.ADMIN),
                api_keys.c.revoked_at.is_(None),
                api_keys.c.livemode.is_(True),  # a test admin key does not run the platform
            )
            .limit(1)
        ).first()
        if active_admin is not None:
            return None
        key, _ = create_api_key(conn, role=ApiKeyRole.ADMIN, name="bootstrap admin")
        return key


# ------------------------------------------------------------------ request authentication


def _unauthorized(detail: str, *, invalid_token: bool) -> Problem:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def bearer_token(authorization: str | None) -> str:
    """The key in an ``Authorization: Bearer`` header, or a 401 problem."""
    if not authorization:
        raise _unauthorized(
            "An API key is required: send 'Authorization: Bearer <api key>'.", invalid_token=False
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(
            "The Authorization header must be 'Bearer <api key>'.", invalid_token=True
        )
    return token


def authenticate(conn: Connection, token: str) -> ApiKeyRecord:
    """The active key whose hash matches ``token``, or a 401 problem."""
    record = lookup_key(conn, hash_api_key(token))
    if record is None:
        raise _unauthorized("The API key is invalid or revoked.", invalid_token=True)
    return record


def lookup_key(conn: Connection, key_hash: str) -> ApiKeyRecord | None:
    """The active key with this hash (None: no such key, or revoked)."""
    row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return _record(row)


class KeyCache:
    """Authenticated keys, remembered for ``ttl`` seconds so that a request needs no query to
    authenticate. A revoked key is refused, and a new key accepted, at most ``ttl`` seconds after
    the change (an unknown key is remembered as unknown for as long: a key is created before it
    is handed out, so this only delays a key used before it existed). ``ttl`` 0: no cache."""

    def __init__(self, ttl: float, *, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> tuple[bool, ApiKeyRecord | None]:
        """(known, record): known False when the cache has nothing fresh for this hash."""
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key_hash: str, record: ApiKeyRecord | None) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.size:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self.size:
                    self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + self.ttl, record)

    def authenticate(self, engine: Engine, token: str) -> ApiKeyRecord:
        """``authenticate`` through the cache (a query only on a miss). Blocking: call it from a
        thread, or after ``get`` answered."""
        key_hash = hash_api_key(token)
        known, record = self.get(key_hash)
        if not known:
            with engine.connect() as conn:
                record = lookup_key(conn, key_hash)
            self.put(key_hash, record)
        if record is None:
            raise _unauthorized("The API key is invalid or revoked.", invalid_token=True)
        return record


async def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> ApiKeyRecord:
    """The authenticated API key of this request (set by ``ApiRoute``)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, ApiKeyRecord):
        # A route outside ApiRoute asked for a principal: refuse rather than serve anonymously.
        raise _unauthorized("An API key is required.", invalid_token=False)
    return principal


CurrentPrincipal = Annotated[ApiKeyRecord, Depends(get_principal)]


def require_roles(*roles: ApiKeyRole) -> Callable[[ApiKeyRecord], Awaitable[ApiKeyRecord]]:
    """A dependency that lets only keys with one of ``roles`` through (403 otherwise)."""
    allowed = frozenset(roles)

    async def check(principal: CurrentPrincipal) -> ApiKeyRecord:
        if principal.role not in allowed:
            raise Problem(
                403,
                "forbidden",
                f"A {principal.role} key may not do this; it needs one of the roles: "
                + ", ".join(sorted(allowed))
                + ".",
                role=str(principal.role),
            )
        return principal

    return check


# The raw ledger endpoints show every seller's money, so only platform keys (admin, operator) use
# them; a seller key reads its own seller's data through the /v1/sellers/{id}/... routes.
ReadAccess = Depends(require_roles(ApiKeyRole.ADMIN, ApiKeyRole.OPERATOR))
WriteAccess = Depends(require_roles(ApiKeyRole.ADMIN, ApiKeyRole.OPERATOR))
