"""SQLAlchemy Core tables of the API's own data (migration 0002): API keys and idempotency keys."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, LargeBinary, MetaData, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False, comment="admin | operator | seller | wallet"),
    Column("seller_id", Text, comment="set exactly for seller keys"),
    Column("wallet_id", Text, comment="set exactly for wallet keys (0010)"),
    Column("key_prefix", Text, nullable=False, comment="first characters, for display"),
    Column("key_hash", Text, nullable=False, unique=True, comment="sha256 hex of the key"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("livemode", Boolean, nullable=False, comment="false: a test key (0012)"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", Uuid, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("status_code", Integer),
    Column("response_body", LargeBinary),
    Column("response_headers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
