"""Domain objects and pages built from database rows (``from_row`` is the ledger's), and the row
of a table by its id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, Table, select
from sqlalchemy.engine import Row

from ledger_core.checks import keyset_rows
from ledger_core.rows import from_row
from marketplace.types import Page

__all__ = ["from_row", "page", "page_of", "row_by_id"]


def page(
    conn: Connection,
    query: Select[Any],
    key: Any,
    after: str | None,
    limit: int,
    build: Callable[[Row[Any]], Any],
) -> Page[Any]:
    """A page of ``query`` ordered by the text column ``key``, after ``after``."""
    rows = keyset_rows(conn, query, key, after, limit)
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


def row_by_id(
    conn: Connection, table: Table, row_id: str, *, for_update: bool = False
) -> Row[Any] | None:
    """The row of ``table`` whose ``id`` is ``row_id`` (None: there is none), locked until the
    transaction ends with ``for_update``."""
    query = select(table).where(table.c.id == row_id)
    if for_update:
        query = query.with_for_update()
    return conn.execute(query).one_or_none()
