"""Cursor pagination, as Modern Treasury does it: ``per_page`` and ``after_cursor``.

The cursor is opaque to clients: URL-safe base64 of the list's name and the last item's id, so a
cursor of one list is refused by another. Every list answers ``{"items": [...], "next_cursor"}``
and sets the headers ``X-Per-Page`` and, when there is a next page, ``X-After-Cursor``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, TypeVar

from fastapi import Query, Response
from pydantic import BaseModel

import marketplace
from api.problems import Problem
from api.schemas.common import ListResponse
from ledger_core import Page

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

PerPage = Annotated[
    int, Query(ge=1, le=MAX_PER_PAGE, description=f"Items per page (at most {MAX_PER_PAGE}).")
]
AfterCursor = Annotated[
    str | None,
    Query(max_length=200, description="The next_cursor (X-After-Cursor) of the previous page."),
]


def _invalid_cursor() -> Problem:
    return Problem(
        422,
        "invalid_cursor",
        "after_cursor is not a cursor of this list; pass the next_cursor of a previous page.",
    )


def _encode(kind: str, key: bytes) -> str:
    raw = kind.encode("ascii") + b":" + key
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(kind: str, cursor: str) -> bytes:
    """The key bytes of a cursor of list ``kind`` (empty if it is not one)."""
    prefix = kind.encode("ascii") + b":"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        return b""
    return raw[len(prefix) :] if raw.startswith(prefix) else b""


def encode_cursor(kind: str, last_id: uuid.UUID) -> str:
    return _encode(kind, last_id.bytes)


def decode_cursor(kind: str, cursor: str | None) -> uuid.UUID | None:
    """The id to continue after, or a 422 problem ``invalid_cursor``."""
    if cursor is None:
        return None
    key = _decode(kind, cursor)
    if len(key) != 16:
        raise _invalid_cursor()
    return uuid.UUID(bytes=key)


# Marketplace lists (sellers, earnings, disputes) are ordered by a text key (seller id, order id,
# dispute id) rather than a UUID: the same cursor format, with the key's UTF-8 bytes.


def encode_key_cursor(kind: str, last_key: str) -> str:
    return _encode(kind, last_key.encode("utf-8"))


def decode_key_cursor(kind: str, cursor: str | None) -> str | None:
    """The key to continue after, or a 422 problem ``invalid_cursor``."""
    if cursor is None:
        return None
    try:
        key = _decode(kind, cursor).decode("utf-8")
    except ValueError:
        key = ""
    if not key:
        raise _invalid_cursor()
    return key


def paginate(
    response: Response,
    kind: str,
    page: Page[T] | marketplace.Page[T],
    per_page: int,
    model: type[M],
) -> ListResponse[M]:
    """A page of ``kind`` as a list of ``model`` (built from each item by attribute), its next
    cursor in the body and in the ``X-After-Cursor`` header, and ``X-Per-Page``."""
    after = page.next_after
    if after is None:
        next_cursor = None
    elif isinstance(after, uuid.UUID):
        next_cursor = encode_cursor(kind, after)
    else:
        next_cursor = encode_key_cursor(kind, after)
    response.headers["X-Per-Page"] = str(per_page)
    if next_cursor is not None:
        response.headers["X-After-Cursor"] = next_cursor
    return ListResponse(
        items=[model.model_validate(item) for item in page.items], next_cursor=next_cursor
    )
