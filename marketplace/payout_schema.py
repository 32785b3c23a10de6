"""SQLAlchemy Core tables of payouts and refunds, mirroring the 0004 migration (payout_runs and
the reconciliation tables belong to the schedules and reconciliation code)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

payout_accounts = Table(
    "payout_accounts",
    metadata,
    Column("seller_id", Text, primary_key=True),
    Column("account_number", Text, nullable=False, comment="full number: never in a response"),
    Column("routing_number", Text, nullable=False),
    Column("holder_name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("seller_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="minor units, > 0"),
    Column("status", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("account_number", Text, nullable=False),
    Column("routing_number", Text, nullable=False),
    Column("holder_name", Text, nullable=False),
    Column("ledger_transaction_id", Uuid, nullable=False),
    Column("return_transaction_id", Uuid),
    Column("rail_reference", Text),
    Column("failure_code", Text),
    Column("failure_reason", Text),
    Column("submitted_at", DateTime(timezone=True)),
    Column("paid_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("returned_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Text, primary_key=True),
    Column("order_id", Text, nullable=False),
    Column("seller_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="gross refunded, minor units"),
    Column("fee_amount", BigInteger, nullable=False, comment="the fee's share, from revenue"),
    Column("seller_amount", BigInteger, nullable=False, comment="the seller's share"),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("ledger_transaction_id", Uuid),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)
