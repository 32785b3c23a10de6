"""Migration 0010 (wallets) on a database of its own: upgrade from 0009 creates the wallet tables,
the wallet key role with its CHECK, and event streams for wallets (a trigger instead of the
foreign key to sellers); downgrade removes them again, wallet events and keys with them."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from api.auth import create_api_key
from ledger_core import NormalBalance
from marketplace import Marketplace
from marketplace.events import EventType, record_event
from server.database import alembic_config, create_db_engine
from tests.payouts.test_migration_0008 import fresh_url  # noqa: F401 (a fixture)

BEFORE, AFTER = "0009_instant_payouts", "0010_wallets"
TABLES = {
    "wallets",
    "wallet_lots",
    "wallet_spends",
    "wallet_spend_lots",
    "wallet_refunds",
    "wallet_transfers",
}


def test_0010_upgrades_and_downgrades(fresh_url: str) -> None:  # noqa: F811
    config = alembic_config(fresh_url)
    command.upgrade(config, BEFORE)
    db = create_db_engine(fresh_url)
    market = Marketplace()
    try:
        with db.begin() as conn:
            # The seller as 0009 knew it, in SQL: the head's tables have columns added since.
            ledger_id = market.platform_ledger(conn, "USD").ledger_id
            account = market.ledger.create_account(
                conn, ledger_id=ledger_id, name="Seller s-old", normal_balance=NormalBalance.CREDIT
            )
            conn.execute(
                text(
                    "INSERT INTO sellers (id, name, currency, hold_period_seconds, "
                    "reserve_percent_bp, ledger_account_id, metadata, created_at, updated_at) "
                    "VALUES ('s-old', 'Old', 'USD', 0, 0, :account, '{}', now(), now())"
                ),
                {"account": account.id},
            )
            record_event(conn, "s-old", EventType.PAYOUT_CREATED, {"n": 1})
        assert not TABLES & set(inspect(db).get_table_names())

        command.upgrade(config, AFTER)
        assert set(inspect(db).get_table_names()) >= TABLES
        command.upgrade(config, "head")  # the domain code below is the head's
        with db.begin() as conn:
            wallet, _ = market.create_wallet(
                conn, wallet_id="w-1", owner="u", name="W", currency="USD"
            )
            market.top_up(conn, wallet.id, amount=500, settled=True)
            # A seller's events go on as before, in the same stream.
            record_event(conn, "s-old", EventType.PAYOUT_PAID, {"n": 2})
            key, record = create_api_key(conn, role="wallet", wallet_id="w-1", name="wallet")
        assert record.wallet_id == "w-1" and key
        with db.begin() as conn:
            streams = dict(
                conn.execute(text("SELECT seller_id, last_sequence FROM event_streams")).all()
            )
        assert streams == {"s-old": 2, "wallet/w-1": 2}
        # A stream must be a seller's or a wallet's; a wallet key names its wallet, others none.
        for statement in (
            "INSERT INTO event_streams (seller_id) VALUES ('nobody')",
            "INSERT INTO event_streams (seller_id) VALUES ('wallet/nobody')",
            "UPDATE api_keys SET wallet_id = NULL WHERE role = 'wallet'",
            "UPDATE api_keys SET role = 'seller', seller_id = 's-old' WHERE role = 'wallet'",
            "UPDATE wallet_lots SET remaining = amount + 1",
            "UPDATE wallet_lots SET status = 'expired'",
        ):
            with pytest.raises(IntegrityError), db.begin() as conn:
                conn.execute(text(statement))

        command.downgrade(config, BEFORE)
        assert not TABLES & set(inspect(db).get_table_names())
        with db.begin() as conn:
            streams = dict(
                conn.execute(text("SELECT seller_id, last_sequence FROM event_streams")).all()
            )
            roles = conn.execute(text("SELECT DISTINCT role FROM api_keys")).scalars().all()
        assert streams == {"s-old": 2} and "wallet" not in roles
        with pytest.raises(IntegrityError), db.begin() as conn:  # the foreign key is back
            conn.execute(text("INSERT INTO event_streams (seller_id) VALUES ('nobody')"))
        command.upgrade(config, "head")
        assert set(inspect(db).get_table_names()) >= TABLES
    finally:
        db.dispose()
