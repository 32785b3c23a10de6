"""Migration 0012 (test mode) on a database of its own: everything that exists before it becomes
live (keys, ledgers, platform ledgers, sellers, wallets, endpoints, events); afterwards a test
seller of the same currency gets a test platform ledger of its own, its events go to test
endpoints only, and the database refuses a seller whose account is in a ledger of the other
mode. Downgrade drops the columns again, and refuses while test-mode data exists."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from marketplace import Marketplace
from marketplace.events import EventType, record_event
from server.database import alembic_config, create_db_engine
from tests.payouts.test_migration_0008 import (
    create_old_seller,
    fresh_url,  # noqa: F401 (a fixture)
)

AFTER = "0012_test_mode"
FLAGGED = ("api_keys", "ledgers", "platform_ledgers", "sellers", "wallets", "webhook_endpoints")


def flagged_tables(engine: Engine) -> set[str]:
    found = set()
    for table in (*FLAGGED, "events", "event_streams"):
        if "livemode" in {c["name"] for c in inspect(engine).get_columns(table)}:
            found.add(table)
    return found


def test_0012_makes_what_exists_live(fresh_url: str) -> None:  # noqa: F811
    config = alembic_config(fresh_url)
    before = ScriptDirectory.from_config(config).get_revision(AFTER).down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    db = create_db_engine(fresh_url)
    try:
        with db.begin() as conn:  # as the schema before 0012 knew them, in SQL
            create_old_seller(conn, "s-old")
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, name, role, key_prefix, key_hash, created_at) "
                    "VALUES (gen_random_uuid(), 'old', 'admin', 'sk_old', 'h', now());"
                    "INSERT INTO webhook_endpoints (id, url, event_types, secret, created_at) "
                    "VALUES ('we_" + "0" * 24 + "', 'https://example.com/old', '{*}', "
                    "'whsec_" + "1" * 32 + "', now())"
                )
            )
            record_event(conn, "s-old", EventType.PAYOUT_CREATED, {"n": 1})
        assert not flagged_tables(db)

        command.upgrade(config, AFTER)
        with db.connect() as conn:
            for table in (*FLAGGED, "events", "event_streams"):
                modes = conn.execute(text(f"SELECT DISTINCT livemode FROM {table}")).scalars()
                assert list(modes) in ([True], []), table
        command.upgrade(config, "head")  # the domain code below is the head's
        market = Marketplace()
        with db.begin() as conn:
            old = market.get_seller(conn, "s-old", livemode=True)
            assert old.livemode and old.currency == "USD"
            new = market.create_seller(
                conn, seller_id="s-test", name="T", currency="USD", livemode=False
            )
            record_event(conn, "s-test", EventType.PAYOUT_CREATED, {"n": 2})
            record_event(conn, "s-old", EventType.PAYOUT_PAID, {"n": 3})
            ledgers = conn.execute(
                text("SELECT currency, livemode, ledger_id FROM platform_ledgers ORDER BY 2")
            ).all()
            events = dict(
                conn.execute(
                    text("SELECT seller_id, bool_and(livemode) FROM events GROUP BY 1")
                ).all()
            )
            deliveries = (
                conn.execute(
                    text(
                        "SELECT e.seller_id FROM webhook_deliveries d"
                        " JOIN events e ON e.id = d.event_id"
                    )
                )
                .scalars()
                .all()
            )
        assert [(c, m) for c, m, _ in ledgers] == [("USD", False), ("USD", True)]
        assert new.ledger_id == ledgers[0].ledger_id != ledgers[1].ledger_id
        assert events == {"s-old": True, "s-test": False}
        assert sorted(deliveries) == ["s-old", "s-old"]  # the live endpoint: live events only
        # A seller's account must be in a ledger of its mode; a platform ledger likewise.
        for statement in (
            "UPDATE sellers SET livemode = false WHERE id = 's-old'",
            "UPDATE platform_ledgers SET ledger_id = "
            f"'{ledgers[1].ledger_id}' WHERE livemode = false",
        ):
            with pytest.raises(IntegrityError), db.begin() as conn:
                conn.execute(text(statement))

        # Test-mode data has no place below 0012: the downgrade refuses until it is gone.
        with pytest.raises(ProgrammingError, match="test-mode data exists"):
            command.downgrade(config, before)
        assert flagged_tables(db) == {*FLAGGED, "events", "event_streams"}
    finally:
        db.dispose()


def test_0012_downgrades_without_test_data(fresh_url: str) -> None:  # noqa: F811
    config = alembic_config(fresh_url)
    before = ScriptDirectory.from_config(config).get_revision(AFTER).down_revision
    assert isinstance(before, str)
    command.upgrade(config, "head")  # the domain code below is the head's
    db = create_db_engine(fresh_url)
    try:
        with db.begin() as conn:
            Marketplace().create_seller(conn, seller_id="s-live", name="L", currency="EUR")
            record_event(conn, "s-live", EventType.PAYOUT_CREATED, {"n": 1})
        command.downgrade(config, before)
        assert not flagged_tables(db)
        with db.connect() as conn:  # the seller and its event stay, the event function works
            record_event(conn, "s-live", EventType.PAYOUT_PAID, {"n": 2})
            count = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        assert count == 2
        command.upgrade(config, "head")
        assert flagged_tables(db) == {*FLAGGED, "events", "event_streams"}
    finally:
        db.dispose()
