"""Shared fixtures: a real PostgreSQL for the whole test session.

``TEST_DATABASE_URL`` set: that server (migrated to head). Unset: an embedded PostgreSQL of the
session's own, in a temporary folder (Unix socket only, so no port is taken).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger_core import LedgerService
from payouts.database import EmbeddedPostgres, create_db_engine, migrate


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        migrate(external)
        yield external
        return
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data")
    url = server.start()
    migrate(url)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_db_engine(database_url, pool_size=20)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def ledger_service() -> LedgerService:
    return LedgerService()
