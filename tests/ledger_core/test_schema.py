"""ledger_core/schema.py (used to build queries) stays in step with the Alembic migrations (which
own the schema): the same tables, columns, types, nullability and indexes. Constraints, comments
and server defaults live in the migration only and are not compared."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, Engine, Index, Integer, MetaData, Table
from sqlalchemy.exc import SAWarning

from ledger_core.schema import metadata

LEDGER_TABLES = frozenset(metadata.tables)
COMPARED = {
    "add_table",
    "remove_table",
    "add_column",
    "remove_column",
    "modify_type",
    "modify_nullable",
    "add_index",
    "remove_index",
}


def drift(conn: Connection, target: MetaData) -> list[tuple[Any, ...]]:
    """The differences between ``target`` and the database, as (operation, table, column)."""

    def include_name(name: str | None, type_: str, parent: dict[str, Any]) -> bool:
        if type_ == "table":
            return name in LEDGER_TABLES
        return parent.get("table_name") in LEDGER_TABLES if parent else True

    context = MigrationContext.configure(
        conn,
        opts={"compare_type": True, "compare_server_default": False, "include_name": include_name},
    )
    with warnings.catch_warnings():
        # Reflection knows no xid8 (a column only the database's triggers use).
        warnings.filterwarnings("ignore", "Did not recognize type", SAWarning)
        diffs = compare_metadata(context, target)
    found = []
    for diff in diffs:
        # Column changes come as lists of tuples, the others as single tuples.
        for op in diff if isinstance(diff, list) else [diff]:
            kind = op[0]
            if kind not in COMPARED:
                continue
            if kind in ("add_table", "remove_table"):
                found.append((kind, op[1].name, None))
            elif kind in ("add_column", "remove_column"):
                found.append((kind, op[2], op[3].name))
            elif kind in ("add_index", "remove_index"):
                found.append((kind, op[1].table.name, op[1].name))
            else:
                found.append((kind, op[2], op[3]))
    return sorted(found, key=str)


def test_schema_matches_the_migrated_database(engine: Engine) -> None:
    with engine.connect() as conn:
        assert drift(conn, metadata) == []


def _altered(change: Callable[[str, Column[Any]], Column[Any] | None]) -> MetaData:
    """A copy of the ledger tables with each column passed through ``change`` (None drops it)."""
    copy = MetaData()
    for table in metadata.sorted_tables:
        columns = []
        for column in table.columns:
            plain = Column(
                column.name, column.type, primary_key=column.primary_key, nullable=column.nullable
            )
            changed = change(table.name, plain)
            if changed is not None:
                columns.append(changed)
        names = {c.name for c in columns}
        indexes = [
            Index(ix.name, *[c.name for c in ix.columns])
            for ix in table.indexes
            if all(c.name in names for c in ix.columns)
        ]
        Table(table.name, copy, *columns, *indexes)
    return copy


def test_the_check_catches_drift(engine: Engine) -> None:
    """Proof that the comparison above would fail on a missing, renamed, retyped or
    re-nulled column or a missing table."""

    def change(table: str, column: Column[Any]) -> Column[Any] | None:
        if (table, column.name) == ("ledger_entries", "ordinal"):
            return None
        if (table, column.name) == ("ledger_accounts", "lock_version"):
            return Column("version", column.type, nullable=False)
        if (table, column.name) == ("ledger_transactions", "total_amount"):
            return Column(column.name, Integer, nullable=False)
        if (table, column.name) == ("ledger_accounts", "name"):
            return Column(column.name, column.type, nullable=True)
        return column

    altered = _altered(change)
    altered.remove(altered.tables["ledgers"])
    with engine.connect() as conn:
        assert drift(conn, _altered(lambda _table, column: column)) == []
        found = drift(conn, altered)
    assert ("remove_column", "ledger_accounts", "lock_version") in found
    assert ("add_column", "ledger_accounts", "version") in found
    assert ("modify_type", "ledger_transactions", "total_amount") in found
    assert ("modify_nullable", "ledger_accounts", "name") in found
    assert ("remove_column", "ledger_entries", "ordinal") in found
    assert ("remove_table", "ledgers", None) in found
