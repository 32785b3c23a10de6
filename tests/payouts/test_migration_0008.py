"""Migration 0008 (payout account status) on a database of its own: upgrade from 0007 keeps
existing accounts (``active``), the CHECKs refuse a half-failed account, and downgrade drops the
columns again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from marketplace import Marketplace, Payouts
from server.database import alembic_config, create_db_engine, to_sqlalchemy_url

BEFORE, AFTER = "0007_entries_per_statement", "0008_payout_account_status"
COLUMNS = {"status", "failure_code", "failed_payout_id", "failed_at"}


@pytest.fixture
def fresh_url(engine: Engine) -> Iterator[str]:
    """A new, empty database on the session's server."""
    name = f"migration_{uuid.uuid4().hex[:10]}"
    admin = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(to_sqlalchemy_url(engine.url.render_as_string(hide_password=False)))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


# A USD platform ledger, a seller's account and the seller as the schema before test mode (0012)
# knew them, in SQL: the head's domain code writes columns added since.
OLD_SELLER = """
INSERT INTO ledgers (id, name, currency, currency_exponent)
     VALUES ('00000000-0000-7000-8000-000000000001', 'Platform USD', 'USD', 2);
INSERT INTO platform_ledgers (currency, ledger_id)
     VALUES ('USD', '00000000-0000-7000-8000-000000000001');
INSERT INTO ledger_accounts (id, ledger_id, name, normal_balance, currency, external_id)
     VALUES ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001',
             'Seller {seller}', 'credit', 'USD', 'seller:{seller}');
INSERT INTO sellers (id, name, currency, hold_period_seconds, reserve_percent_bp,
                     ledger_account_id, metadata, created_at, updated_at)
     VALUES ('{seller}', 'Old', 'USD', 0, 0, '00000000-0000-7000-8000-000000000002', '{{}}',
             now(), now());
"""


def create_old_seller(conn: Connection, seller_id: str) -> None:
    """A seller (and its USD platform ledger) on a schema from 0003 to 0011, in SQL."""
    conn.exec_driver_sql(OLD_SELLER.format(seller=seller_id))


def account_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("payout_accounts")}


def test_0008_upgrades_and_downgrades(fresh_url: str) -> None:
    config = alembic_config(fresh_url)
    command.upgrade(config, BEFORE)
    db = create_db_engine(fresh_url)
    try:
        payouts = Payouts(Marketplace())
        with db.begin() as conn:
            # The seller as 0007 knew it, in SQL: the head's tables have columns added since.
            create_old_seller(conn, "s-old")
            conn.execute(
                text(
                    "INSERT INTO payout_accounts (seller_id, account_number, routing_number, "
                    "holder_name) VALUES ('s-old', '000123456789', '110000000', 'Jane')"
                )
            )
        assert not COLUMNS & account_columns(db)

        command.upgrade(config, AFTER)
        assert account_columns(db) >= COLUMNS
        with db.begin() as conn:
            old = payouts.get_payout_account(conn, "s-old")
        assert (old.status, old.failure_code) == ("active", None)
        # A failed account says why; an active one carries no failure.
        for values in (
            "status = 'failed'",
            "status = 'active', failure_code = 'account_closed'",
            "status = 'unknown'",
        ):
            with pytest.raises(IntegrityError), db.begin() as conn:
                conn.execute(text(f"UPDATE payout_accounts SET {values}"))

        command.downgrade(config, BEFORE)
        assert not COLUMNS & account_columns(db)
        command.upgrade(config, "head")
        assert account_columns(db) >= COLUMNS
    finally:
        db.dispose()
