"""SQLAlchemy Core tables of the marketplace, mirroring the 0003 migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

platform_ledgers = Table(
    "platform_ledgers",
    metadata,
    Column("currency", Text, primary_key=True),
    Column("ledger_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sellers = Table(
    "sellers",
    metadata,
    Column("id", Text, primary_key=True, comment="chosen by the platform"),
    Column("name", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("hold_period_seconds", BigInteger, nullable=False, comment="for future earnings"),
    Column("reserve_percent_bp", Integer, nullable=False, comment="basis points of net"),
    Column("reserve_period_seconds", BigInteger),
    Column("ledger_account_id", Uuid, nullable=False, comment="credit-normal seller account"),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

earnings = Table(
    "earnings",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("seller_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="gross, minor units"),
    Column("fee", BigInteger, nullable=False, comment="platform fee, minor units"),
    Column("net", BigInteger, nullable=False, comment="amount - fee, credited to the seller"),
    Column("ledger_transaction_id", Uuid, nullable=False),
    Column("status", Text, nullable=False),
    Column("hold_until", DateTime(timezone=True), nullable=False),
    Column("posted_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("reserve_percent_bp", Integer, nullable=False),
    Column("reserve_period_seconds", BigInteger),
    Column("reserve_amount", BigInteger, nullable=False, comment="held back after posting"),
    Column("reserve_transaction_id", Uuid),
    Column("reserve_release_at", DateTime(timezone=True)),
    Column("reserve_released_at", DateTime(timezone=True)),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("refunded_amount", BigInteger, nullable=False, comment="gross refunded so far (0004)"),
)

disputes = Table(
    "disputes",
    metadata,
    Column("id", Text, primary_key=True),
    Column("seller_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="disputed, minor units"),
    Column("reason", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("ledger_transaction_id", Uuid, nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

seller_hold_clocks = Table(
    "seller_hold_clocks",
    metadata,
    Column("seller_id", Text, primary_key=True),
    Column("timer_at", DateTime(timezone=True), comment="when the hold workflow next looks"),
    Column("not_before", DateTime(timezone=True), comment="its last turn + the release window"),
    Column("wake_requested_at", DateTime(timezone=True), comment="earliest wake a booking asked"),
    Column("wake_requested_on", DateTime(timezone=True), comment="when it asked"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

seller_balances = Table(
    "seller_balances",
    metadata,
    Column("seller_id", Text, primary_key=True),
    Column("on_hold", BigInteger, nullable=False, comment="net of earnings in their hold"),
    Column("on_hold_count", BigInteger, nullable=False),
    Column("in_reserve", BigInteger, nullable=False, comment="rolling reserves held"),
    Column("in_reserve_count", BigInteger, nullable=False),
    Column("in_dispute", BigInteger, nullable=False, comment="open chargebacks"),
    Column("in_transit", BigInteger, nullable=False, comment="payouts reserved, not yet paid"),
)
