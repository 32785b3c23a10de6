"""Migration 0009 (instant payouts) on a database of its own: after the upgrade from 0008 a payout
is standard with no fee unless it says otherwise, the CHECKs refuse a fee on a standard payout
and an unknown method, downgrade drops the columns and gives in_transit its old rule back, and
after upgrading again a payout's in_transit counts its amount and its fee."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from marketplace import InstantTerms, Marketplace, Payouts
from server.database import alembic_config, create_db_engine
from tests.payouts.test_migration_0008 import fresh_url  # noqa: F401 (a fixture)

BEFORE, AFTER = "0008_payout_account_status", "0009_instant_payouts"


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def in_transit_rule(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT pg_get_functiondef('seller_balances_payouts_update'::regproc)")
            ).scalar_one()
        )


def test_0009_upgrades_and_downgrades(fresh_url: str) -> None:  # noqa: F811
    config = alembic_config(fresh_url)
    command.upgrade(config, BEFORE)
    db = create_db_engine(fresh_url)
    try:
        assert "method" not in columns(db, "payouts")

        command.upgrade(config, AFTER)
        assert columns(db, "payouts") >= {"method", "fee"}
        assert "instant_daily_limit" in columns(db, "sellers")
        assert columns(db, "instant_payout_days") == {"seller_id", "day", "amount"}
        assert "amount + fee" in in_transit_rule(db)
        command.upgrade(config, "head")  # the domain code below is the head's
        payouts = Payouts(Marketplace(), InstantTerms(fee_bp=100, fee_minimum=25))
        with db.begin() as conn:
            m = payouts.marketplace
            m.create_seller(conn, seller_id="s-old", name="Old", currency="USD")
            payouts.set_payout_account(conn, "s-old", "000123456789", "110000000", "Jane")
            m.book_earning(conn, seller_id="s-old", order_id="o-1", amount=10_000)
            m.post_earning(conn, "s-old", "o-1")
            standard = payouts.reserve_payout(
                conn, payout_id="p-std", seller_id="s-old", amount=1_000
            )
            instant = payouts.reserve_payout(
                conn, payout_id="p-rtp", seller_id="s-old", amount=2_000, method="instant"
            )
            balances = m.seller_balances(conn, "s-old")
        assert (standard.method, standard.fee) == ("standard", 0)
        assert (instant.method, instant.fee) == ("instant", 25)
        assert balances.in_transit == 1_000 + 2_000 + 25
        assert balances.posted - balances.available == balances.in_transit
        for change in (
            "fee = 1 WHERE id = 'p-std'",
            "method = 'overnight' WHERE id = 'p-std'",
            "fee = -1 WHERE id = 'p-rtp'",
        ):
            with pytest.raises(IntegrityError), db.begin() as conn:
                conn.execute(text(f"UPDATE payouts SET {change}"))
        with pytest.raises(IntegrityError), db.begin() as conn:
            conn.execute(text("UPDATE sellers SET instant_daily_limit = -1"))
        with db.connect() as conn:
            counted = conn.execute(text("SELECT amount FROM instant_payout_days")).scalars().all()
        assert counted == [2_000]  # the instant payout's amount counts towards its day
        with pytest.raises(IntegrityError), db.begin() as conn:
            conn.execute(text("UPDATE instant_payout_days SET amount = -1"))

        command.downgrade(config, BEFORE)
        assert not {"method", "fee"} & columns(db, "payouts")
        assert "instant_daily_limit" not in columns(db, "sellers")
        assert "instant_payout_days" not in inspect(db).get_table_names()
        assert "amount + fee" not in in_transit_rule(db)
        assert "THEN amount ELSE 0 END" in in_transit_rule(db)
        command.upgrade(config, "head")
        assert "amount + fee" in in_transit_rule(db)
    finally:
        db.dispose()
