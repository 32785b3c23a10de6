"""SQLAlchemy Core tables of events and webhooks, mirroring the 0005 migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

event_streams = Table(
    "event_streams",
    metadata,
    Column("seller_id", Text, primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    Column("last_available", BigInteger),
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
