"""Migration 0013 (test clocks) on a database of its own: upgrade from 0012 adds the clocks and
the clock of sellers and wallets (existing ones on none), with the CHECKs, the foreign keys and
the rule that an object stays on its clock; downgrade removes them again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from marketplace import Marketplace
from marketplace.test_clocks import TestClocks
from server.database import alembic_config, create_db_engine
from tests.payouts.test_migration_0008 import fresh_url  # noqa: F401 (a fixture)

BEFORE, AFTER = "0012_test_mode", "0013_test_clocks"


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_0013_upgrades_and_downgrades(fresh_url: str) -> None:  # noqa: F811
    config = alembic_config(fresh_url)
    command.upgrade(config, BEFORE)
    db = create_db_engine(fresh_url)
    try:
        assert "test_clocks" not in inspect(db).get_table_names()
        command.upgrade(config, AFTER)
        assert "test_clock_id" in columns(db, "sellers") & columns(db, "wallets")
        command.upgrade(config, "head")  # the domain code below is the head's
        market, clocks = Marketplace(), TestClocks()
        with db.begin() as conn:
            market.create_seller(conn, seller_id="s-live", name="Live", currency="USD")
            clocks.create_clock(
                conn, clock_id="c-1", name="C", frozen_time=datetime(2030, 1, 1, tzinfo=UTC)
            )
            seller = market.create_seller(
                conn,
                seller_id="s-clock",
                name="On a clock",
                currency="USD",
                test_clock_id="c-1",
                livemode=False,
            )
            wallet, _ = market.create_wallet(
                conn,
                wallet_id="w-1",
                owner="u",
                name="W",
                currency="USD",
                test_clock_id="c-1",
                livemode=False,
            )
        assert (seller.test_clock_id, wallet.test_clock_id) == ("c-1", "c-1")
        for statement in (
            "UPDATE sellers SET test_clock_id = NULL WHERE id = 's-clock'",
            "UPDATE sellers SET test_clock_id = 'c-1' WHERE id = 's-live'",
            "UPDATE wallets SET test_clock_id = NULL",
            "INSERT INTO test_clocks (id, name, frozen_time, created_at, updated_at) "
            "VALUES ('c-2', 'C', now(), now(), now()), ('c-2', 'D', now(), now(), now())",
            "UPDATE test_clocks SET status = 'advancing'",
            "UPDATE test_clocks SET status = 'advancing', advance_to = frozen_time - interval '1s'",
            "UPDATE test_clocks SET status = 'paused'",
            "DELETE FROM test_clocks",
        ):
            with pytest.raises(IntegrityError), db.begin() as conn:
                conn.execute(text(statement))

        command.downgrade(config, BEFORE)
        assert "test_clocks" not in inspect(db).get_table_names()
        assert "test_clock_id" not in columns(db, "sellers") | columns(db, "wallets")
        with db.connect() as conn:
            kept = conn.execute(text("SELECT id FROM sellers ORDER BY id")).scalars().all()
        assert kept == ["s-clock", "s-live"]  # the objects stay, on the wall clock
        command.upgrade(config, "head")
        assert "test_clocks" in inspect(db).get_table_names()
    finally:
        db.dispose()
