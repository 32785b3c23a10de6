"""``Idempotency-Key`` on POST requests, kept in PostgreSQL (table ``idempotency_keys``).

The key is scoped to the API key. ``claim`` inserts the key's row first thing in the request's
own database transaction; ``store`` completes it with the response just before the commit. So:

- a committed row always comes with the request's writes, and the writes with the row;
- a concurrent duplicate blocks on the row's primary key until the first request commits, then
  replays its response (or, if the first rolled back, executes itself);
- a failed request rolls back its row with everything else: error responses are not stored and a
  retry executes again.

The same key with the same method, path and body replays the first response (status, body and
``Location``) with ``Idempotency-Replayed: true``; with anything else it is a 422 problem
``idempotency_key_reused``. Keys are kept (DESIGN.md: "Keys are kept").
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass

from fastapi import Header
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from starlette.responses import Response

from api.problems import Problem
from api.tables import idempotency_keys

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotency-Replayed"
MAX_KEY_LENGTH = 255
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces
_STORED_HEADERS = ("content-type", "location")


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """What identifies a request for the purpose of replaying it."""

    key: str
    method: str
    path: str
    request_hash: str


def parse_key(value: str) -> str:
    if not _KEY_PATTERN.match(value):
        raise Problem(
            422,
            "invalid_idempotency_key",
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters "
            "(a UUID is a good choice).",
        )
    return value


def body_hash(body: bytes) -> str:
    """SHA-256 of the body; JSON is canonicalised so key order and spacing do not matter."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8", "surrogatepass")
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def key_derived_id(prefix: str, *scope: str) -> str:
    """A resource id derived from an ``Idempotency-Key`` and what the key is scoped to (the
    seller, the order, the key itself), so that a retry with the key names the same resource:
    ``<prefix>_<24 hex digits of SHA-256>``."""
    digest = hashlib.sha256("\n".join(scope).encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def claim(conn: Connection, api_key_id: uuid.UUID, request: IdempotentRequest) -> Response | None:
    """Reserve the key for this request, or return the stored response to replay.

    Blocks while another transaction holds the same key, until it commits or rolls back.
    """
    inserted = conn.execute(
        pg_insert(idempotency_keys)
        .values(
            api_key_id=api_key_id,
            key=request.key,
            method=request.method,
            path=request.path,
            request_hash=request.request_hash,
            response_headers={},
            created_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
        .returning(idempotency_keys.c.key)
    ).first()
    if inserted is not None:
        return None
    stored = conn.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == request.key
        )
    ).one()
    if (stored.method, stored.path, stored.request_hash) != (
        request.method,
        request.path,
        request.request_hash,
    ):
        raise Problem(
            422,
            "idempotency_key_reused",
            f"{IDEMPOTENCY_HEADER} {request.key!r} was already used for a different request "
            f"({stored.method} {stored.path} with another body); use a new key for a new request.",
        )
    if stored.status_code is None or stored.response_body is None:  # pragma: no cover
        # Cannot be committed without a response (see the migration); kept as a guard.
        raise Problem(409, "idempotency_key_in_use", "The first request is still in progress.")
    headers = {str(k): str(v) for k, v in stored.response_headers.items()}
    headers[REPLAYED_HEADER] = "true"
    return Response(
        content=bytes(stored.response_body), status_code=stored.status_code, headers=headers
    )


def store(
    conn: Connection, api_key_id: uuid.UUID, request: IdempotentRequest, response: Response
) -> None:
    """Complete the claimed row with the response, in the request's transaction."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes | memoryview):
        raise TypeError("idempotent routes must return a buffered response, not a stream")
    headers = {k: v for k, v in response.headers.items() if k.lower() in _STORED_HEADERS}
    conn.execute(
        idempotency_keys.update()
        .where(idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == request.key)
        .values(
            status_code=response.status_code, response_body=bytes(body), response_headers=headers
        )
    )


async def document_idempotency_key(
    idempotency_key: str | None = Header(
        default=None,
        alias=IDEMPOTENCY_HEADER,
        max_length=MAX_KEY_LENGTH,
        description="Retry-safe key: the same key and body replay the first response.",
    ),
) -> None:
    """Shows the header in OpenAPI for every POST route; ``ApiRoute`` does the work."""
