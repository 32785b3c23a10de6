"""Domain objects and pages built from database rows (``from_row`` is the ledger's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Row

from ledger_core.rows import from_row
from marketplace.checks import check_limit
from marketplace.types import Page

__all__ = ["from_row", "page", "page_of"]


def page(
    conn: Connection,
    query: Select[Any],
    key: Any,
    after: str | None,
    limit: int,
    build: Callable[[Row[Any]], Any],
) -> Page[Any]:
    """A page of ``query`` ordered by the text column ``key``, after ``after``."""
    check_limit(limit)
    if after is not None:
        query = query.where(key > after)
    rows = conn.execute(query.order_by(key).limit(limit + 1)).all()
    return page_of(rows, limit, build, key.name)


def page_of(
    rows: Sequence[Row[Any]], limit: int, build: Callable[[Row[Any]], Any], key: str
) -> Page[Any]:
    """A page of ``limit`` from ``rows`` (``limit`` + 1 read: one more means a next page); the
    next page starts after the last row's ``key``."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = str(getattr(rows[-1], key)) if more else None
    return Page(items=[build(r) for r in rows], next_after=next_after)
