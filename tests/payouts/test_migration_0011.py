"""Migration 0011 (payout items) on a database of its own: a payout made before it has no items
(``item_count`` NULL) and the next payout counts it as in transit; the CHECKs refuse a line of
an entry kind without its entry (and the reverse) and a zero line; downgrade drops the table and
the column again."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from ledger_core import Direction, NewEntry, NewLedgerTransaction, TransactionStatus
from marketplace import Marketplace, Payouts
from marketplace.payout_items import list_items
from marketplace.types import PlatformAccount
from server.database import alembic_config, create_db_engine
from tests.payouts.test_migration_0008 import fresh_url  # noqa: F401 (a fixture)

BEFORE, AFTER = "0010_wallets", "0011_payout_items"


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_0011_upgrades_and_downgrades(fresh_url: str) -> None:  # noqa: F811
    config = alembic_config(fresh_url)
    # The head's domain code needs the head's schema: the data is made there, with a payout
    # written in SQL as 0010 made them (no items), then the schema goes down to 0010 and back.
    command.upgrade(config, "head")
    db = create_db_engine(fresh_url)
    payouts = Payouts(Marketplace())
    m = payouts.marketplace
    try:
        with db.begin() as conn:
            m.create_seller(conn, seller_id="s-old", name="Old", currency="USD")
            payouts.set_payout_account(conn, "s-old", "000123456789", "110000000", "Jane")
            m.book_earning(conn, seller_id="s-old", order_id="o-1", amount=10_000)
            m.post_earning(conn, "s-old", "o-1")
            # A payout as 0010 made it: its pending debit, and its row in SQL.
            account_id, _ = m.seller_account(conn, "s-old")
            platform = m.platform_ledger(conn, "USD", livemode=True)
            txn = m.ledger.create_transaction(
                conn,
                NewLedgerTransaction(
                    ledger_id=platform.ledger_id,
                    entries=(
                        NewEntry(account_id, Direction.DEBIT, 4_000),
                        NewEntry(
                            platform.account(PlatformAccount.PAYOUTS_IN_TRANSIT),
                            Direction.CREDIT,
                            4_000,
                        ),
                    ),
                    status=TransactionStatus.PENDING,
                    external_id="payout:p-old",
                ),
            )
            conn.execute(
                text(
                    "INSERT INTO payouts (id, seller_id, currency, amount, status, origin, "
                    "account_number, routing_number, holder_name, ledger_transaction_id, "
                    "metadata, created_at, updated_at) VALUES ('p-old', 's-old', 'USD', 4000, "
                    "'pending', 'manual', '000123456789', '110000000', 'Jane', :txn, '{}', "
                    "now(), now())"
                ),
                {"txn": txn.id},
            )
        command.downgrade(config, BEFORE)
        assert "payout_items" not in inspect(db).get_table_names()
        assert "item_count" not in columns(db, "payouts")

        command.upgrade(config, "head")
        assert "item_count" in columns(db, "payouts")
        with db.begin() as conn:
            old = payouts.get_payout(conn, "p-old")
            assert old.item_count is None
            assert list_items(conn, old).itemized is False
            new = payouts.reserve_payout(conn, payout_id="p-new", seller_id="s-old")
            shown = list_items(conn, new)
            assert [(i.kind, i.reference, i.amount) for i in shown.items] == [
                ("earning", "o-1", 10_000),
                ("payout_in_transit", "p-old", -4_000),
            ]
            assert shown.total == new.amount == 6_000
        for values in (
            # An entry kind without its entry, a held-back line naming one, a zero line.
            "'earning', NULL, 5",
            "'reserve_held', (SELECT ledger_entry_id FROM payout_items LIMIT 1), -5",
            "'carried_forward', NULL, 0",
        ):
            with pytest.raises(IntegrityError), db.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO payout_items (payout_id, line, seller_id, kind, "
                        f"ledger_entry_id, amount, effective_at, created_at) SELECT 'p-new', 9, "
                        f"'s-old', {values}, now(), now()"
                    )
                )

        command.downgrade(config, BEFORE)
        assert "payout_items" not in inspect(db).get_table_names()
        assert "item_count" not in columns(db, "payouts")
        command.upgrade(config, "head")
        assert "payout_items" in inspect(db).get_table_names()
    finally:
        db.dispose()
