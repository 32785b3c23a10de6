"""Alembic environment: online migrations only, one transaction per run, advisory-locked."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None

# Several processes (API replicas, workers) may start at once: serialise migrations.
MIGRATION_LOCK_ID = 7_340_001

connectable = create_engine(url, poolclass=pool.NullPool)
with connectable.connect() as connection:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    connection.commit()
    try:
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
connectable.dispose()
