"""SQLAlchemy Core tables of the marketplace, mirroring the Alembic migrations
(``server/migrations`` owns the schema: these tables build queries and create nothing):
sellers and earnings (0003), payouts, refunds, payout runs and reconciliation (0004), events and
webhooks (0005), wallets (0010), payout items (0011), test mode (0012: ``livemode`` on the
roots), test clocks (0013). One ``MetaData``, with the ledger's naming convention
(``ledger_core.schema``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from ledger_core.schema import metadata as ledger_metadata

metadata = MetaData(naming_convention=ledger_metadata.naming_convention)

# ------------------------------------------------------------------ sellers and earnings (0003)

platform_ledgers = Table(
    "platform_ledgers",
    metadata,
    Column("currency", Text, primary_key=True),
    Column("livemode", Boolean, primary_key=True, comment="one per currency and mode (0012)"),
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
    Column("instant_daily_limit", BigInteger, comment="own instant limit; NULL: the platform's"),
    Column("test_clock_id", Text, comment="the test clock whose time is the seller's now"),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("livemode", Boolean, nullable=False, comment="false: test mode (0012)"),
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

# --------------------------------------------- payouts, refunds, payout runs, reconciliation (0004)

payout_accounts = Table(
    "payout_accounts",
    metadata,
    Column("seller_id", Text, primary_key=True),
    Column("account_number", Text, nullable=False, comment="full number: never in a response"),
    Column("routing_number", Text, nullable=False),
    Column("holder_name", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="active", comment="active | failed"),
    Column("failure_code", Text, comment="failed: the rail's code (account_closed, ...)"),
    Column("failed_payout_id", Text, comment="failed: the payout that failed"),
    Column("failed_at", DateTime(timezone=True)),
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
    Column("method", Text, nullable=False, server_default="standard", comment="standard|instant"),
    Column(
        "fee", BigInteger, nullable=False, server_default="0", comment="instant fee, minor units"
    ),
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
    Column("item_count", Integer, comment="its lines (0011); NULL: reserved before itemization"),
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

instant_payout_days = Table(
    "instant_payout_days",
    metadata,
    Column("seller_id", Text, primary_key=True),
    Column("day", Date, primary_key=True, comment="UTC"),
    Column("amount", BigInteger, nullable=False, comment="instant payouts that count, >= 0"),
)

payout_runs = Table(
    "payout_runs",
    metadata,
    Column("id", Text, primary_key=True, comment="<seller id>:<scheduled time ISO 8601 UTC>"),
    Column("seller_id", Text, nullable=False),
    Column("scheduled_at", DateTime(timezone=True), nullable=False),
    Column("outcome", Text, nullable=False, comment="started | skipped"),
    Column("payout_id", Text),
    Column("amount", BigInteger, comment="minor units: the payout's amount (started)"),
    Column("reason", Text, comment="why it skipped"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

reconciliation_statements = Table(
    "reconciliation_statements",
    metadata,
    Column("id", Text, primary_key=True),
    Column("filename", Text),
    Column("content_sha256", Text, nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("summary", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

reconciliation_lines = Table(
    "reconciliation_lines",
    metadata,
    Column("statement_id", Text, primary_key=True),
    Column("line_number", Integer, primary_key=True),
    Column("value_date", Date),
    Column("amount", BigInteger, comment="minor units, as the statement says"),
    Column("currency", Text),
    Column("reference", Text),
    Column("result", Text, nullable=False),
    Column("payout_id", Text),
    Column("expected_amount", BigInteger, comment="minor units, the payout's"),
    Column("detail", Text),
)

# ------------------------------------------------------------------- events and webhooks (0005)

event_streams = Table(
    "event_streams",
    metadata,
    Column("seller_id", Text, primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    Column("last_available", BigInteger),
    Column("livemode", Boolean, nullable=False, comment="its owner's mode (0012)"),
)

events = Table(
    "events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("seller_id", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("livemode", Boolean, nullable=False, comment="its stream's mode (0012)"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("secret", Text, nullable=False, comment="signs deliveries; shown once"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    Column("livemode", Boolean, nullable=False, comment="gets only events of its mode (0012)"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("seller_id", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_response_status", Integer),
    Column("last_error", Text),
    Column("succeeded_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

webhook_delivery_attempts = Table(
    "webhook_delivery_attempts",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("response_status", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
)

# ------------------------------------------------------------------------------ wallets (0010)

wallets = Table(
    "wallets",
    metadata,
    Column("id", Text, primary_key=True, comment="chosen by the platform, or wal_<uuid7>"),
    Column("owner", Text, nullable=False, comment="who the wallet belongs to (the user's id)"),
    Column("name", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("ledger_account_id", Uuid, nullable=False, comment="credit-normal wallet account"),
    Column("test_clock_id", Text, comment="the test clock whose time is the wallet's now"),
    Column("metadata", JSONB, nullable=False),
    Column("expiry_timer_at", DateTime(timezone=True), comment="when expiries are looked at next"),
    Column("expiry_wake_requested_at", DateTime(timezone=True), comment="earliest wake asked"),
    Column("expiry_wake_requested_on", DateTime(timezone=True), comment="when it was asked"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("livemode", Boolean, nullable=False, comment="false: test mode (0012)"),
)

wallet_lots = Table(
    "wallet_lots",
    metadata,
    Column("id", Text, primary_key=True),
    Column("wallet_id", Text, nullable=False),
    Column("kind", Text, nullable=False, comment="top_up | transfer"),
    Column("amount", BigInteger, nullable=False, comment="minor units, > 0"),
    Column("remaining", BigInteger, nullable=False, comment="not yet spent, sent or expired"),
    Column("expired_amount", BigInteger, nullable=False, comment="taken to breakage so far"),
    Column("expiry_count", Integer, nullable=False, comment="expiries of this lot so far"),
    Column("status", Text, nullable=False, comment="pending | settled | failed | expired"),
    Column("expires_at", DateTime(timezone=True)),
    Column("ledger_transaction_id", Uuid, nullable=False),
    Column("transfer_id", Text),
    Column("metadata", JSONB, nullable=False),
    Column("settled_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("expired_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

wallet_spends = Table(
    "wallet_spends",
    metadata,
    Column("id", Text, primary_key=True),
    Column("wallet_id", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="minor units, > 0"),
    Column("refunded_amount", BigInteger, nullable=False, comment="refunded so far"),
    Column("description", Text, nullable=False),
    Column("ledger_transaction_id", Uuid, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

wallet_spend_lots = Table(
    "wallet_spend_lots",
    metadata,
    Column("spend_id", Text, primary_key=True),
    Column("lot_id", Text, primary_key=True),
    Column("amount", BigInteger, nullable=False, comment="taken from the lot"),
    Column("refunded", BigInteger, nullable=False, comment="given back to it so far"),
)

wallet_refunds = Table(
    "wallet_refunds",
    metadata,
    Column("id", Text, primary_key=True),
    Column("spend_id", Text, nullable=False),
    Column("wallet_id", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="minor units, > 0"),
    Column("ledger_transaction_id", Uuid, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

wallet_transfers = Table(
    "wallet_transfers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("from_wallet_id", Text, nullable=False),
    Column("to_wallet_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="minor units, > 0"),
    Column("description", Text, nullable=False),
    Column("ledger_transaction_id", Uuid, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# -------------------------------------------------------------------------- payout items (0011)

payout_items = Table(
    "payout_items",
    metadata,
    Column("payout_id", Text, primary_key=True),
    Column("line", Integer, primary_key=True, comment="1, 2, ... in the payout"),
    Column("seller_id", Text, nullable=False),
    Column("kind", Text, nullable=False, comment="earning, refund, ..., carried_forward"),
    Column("reference", Text, comment="order, refund, dispute or payout id"),
    Column("ledger_entry_id", Uuid, comment="the entry it pays out; NULL: a line of no entry"),
    Column("ledger_transaction_id", Uuid),
    Column("amount", BigInteger, nullable=False, comment="signed, minor units"),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("released_at", DateTime(timezone=True), comment="its payout failed or was cancelled"),
)

# ------------------------------------------------------------------ test clocks (0013)

test_clocks = Table(
    "test_clocks",
    metadata,
    Column("id", Text, primary_key=True, comment="clock_<uuid7>, or chosen"),
    Column("name", Text, nullable=False),
    Column("frozen_time", DateTime(timezone=True), nullable=False, comment="its objects' now"),
    Column("status", Text, nullable=False, comment="ready | advancing"),
    Column("advance_to", DateTime(timezone=True), comment="the target while advancing"),
    Column("advance_count", Integer, nullable=False, comment="advances requested so far"),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
