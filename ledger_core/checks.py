"""Checks of what callers pass in, the clock and small helpers, shared by the ledger's operations
and the packages built on it (``marketplace`` imports them): the limits of an amount and of a
page, aware datetimes, keyset pages, metadata merges."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Row

from ledger_core import errors
from ledger_core.types import (
    Page,
)

MAX_AMOUNT = 2**63 - 1
"""The largest amount in minor units (a PostgreSQL bigint)."""
MAX_PAGE = 1000
"""The longest page a list returns."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_aware(value: datetime | None, field: str) -> None:
    if value is not None and value.tzinfo is None:
        raise errors.ValidationFailed(f"{field} must include a time zone offset", field=field)


def check_amount(value: object, field: str, *, allow_zero: bool = False) -> int:
    # bool is an int in Python; a float is never an amount: minor units are integers.
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.ValidationFailed(
            f"{field} must be an integer number of minor units", field=field
        )
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_AMOUNT:
        raise errors.ValidationFailed(
            f"{field} must be {'>= 0' if allow_zero else 'positive'} and at most {MAX_AMOUNT}",
            field=field,
        )
    return value


def merge_metadata(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Modern Treasury's rule: given keys are set; a key set to null or "" is removed."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise errors.ValidationFailed(
            f"per_page must be between 1 and {MAX_PAGE}", field="per_page"
        )


def keyset_rows(
    conn: Connection, query: Select[Any], key: Any, after: Any, limit: int
) -> Sequence[Row[Any]]:
    """Up to ``limit`` + 1 rows of ``query`` ordered by ``key``, those after ``after`` (None:
    from the first): one more than ``limit`` means a next page."""
    check_limit(limit)
    if after is not None:
        query = query.where(key > after)
    return conn.execute(query.order_by(key).limit(limit + 1)).all()


def keyset_page(
    conn: Connection,
    query: Select[Any],
    key: Any,
    after: uuid.UUID | None,
    limit: int,
    build: Any,
) -> Page[Any]:
    rows = keyset_rows(conn, query, key, after, limit)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [build(r) for r in rows]
    return Page(items=items, next_after=rows[-1].id if more else None)
