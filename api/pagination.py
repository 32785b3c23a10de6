"""Cursor pagination, as Modern Treasury does it: ``per_page`` and ``after_cursor``.

The cursor is opaque to clients: URL-safe base64 of the list's name and the last item's id, so a
cursor of one list is refused by another. Every list answers ``{"items": [...], "next_cursor"}``
and sets the headers ``X-Per-Page`` and, when there is a next page, ``X-After-Cursor``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query, Response

import marketplace
from api.problems import Problem
from api.schemas.common import ListResponse
from ledger_core import Page

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100

T = TypeVar("T")
U = TypeVar("U")

PerPage = Annotated[
    int, Query(ge=1, le=MAX_PER_PAGE, description=f"Items per page (at most {MAX_PER_PAGE}).")
]
AfterCursor = Annotated[
    str | None,
    Query(max_length=200, description="The next_cursor (X-After-Cursor) of the previous page."),
]


def encode_cursor(kind: str, last_id: uuid.UUID) -> str:
    raw = kind.encode("ascii") + b":" + last_id.bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, cursor: str | None) -> uuid.UUID | None:
    """The id to continue after, or a 422 problem ``invalid_cursor``."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    prefix = kind.encode("ascii") + b":"
    if not raw.startswith(prefix) or len(raw) != len(prefix) + 16:
        raise Problem(
            422,
            "invalid_cursor",
            "after_cursor is not a cursor of this list; pass the next_cursor of a previous page.",
        )
    return uuid.UUID(bytes=raw[len(prefix) :])


def paginate(
    response: Response,
    kind: str,
    page: Page[T],
    per_page: int,
    render: Callable[[T], U],
) -> ListResponse[U]:
    next_cursor = encode_cursor(kind, page.next_after) if page.next_after is not None else None
    response.headers["X-Per-Page"] = str(per_page)
    if next_cursor is not None:
        response.headers["X-After-Cursor"] = next_cursor
    return ListResponse(items=[render(item) for item in page.items], next_cursor=next_cursor)


# Marketplace lists (sellers, earnings, disputes) are ordered by a text key (seller id, order id,
# dispute id) rather than a UUID: the same cursor format, with the key's UTF-8 bytes.


def encode_key_cursor(kind: str, last_key: str) -> str:
    raw = kind.encode("ascii") + b":" + last_key.encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_key_cursor(kind: str, cursor: str | None) -> str | None:
    """The key to continue after, or a 422 problem ``invalid_cursor``."""
    if cursor is None:
        return None
    prefix = kind.encode("ascii") + b":"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = raw[len(prefix) :].decode("utf-8") if raw.startswith(prefix) else ""
    except (binascii.Error, ValueError):
        key = ""
    if not key:
        raise Problem(
            422,
            "invalid_cursor",
            "after_cursor is not a cursor of this list; pass the next_cursor of a previous page.",
        )
    return key


def paginate_keyed(
    response: Response,
    kind: str,
    page: marketplace.Page[T],
    per_page: int,
    render: Callable[[T], U],
) -> ListResponse[U]:
    next_cursor = encode_key_cursor(kind, page.next_after) if page.next_after is not None else None
    response.headers["X-Per-Page"] = str(per_page)
    if next_cursor is not None:
        response.headers["X-After-Cursor"] = next_cursor
    return ListResponse(items=[render(item) for item in page.items], next_cursor=next_cursor)
