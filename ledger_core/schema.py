"""SQLAlchemy Core tables of the ledger, mirroring the Alembic migrations (a test keeps them in
step). Used to build reads; the hot write path uses hand-written SQL."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import UserDefinedType


class XID8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "XID8"


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ledgers = Table(
    "ledgers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("currency", Text, nullable=False, comment="ISO 4217 code; one currency per ledger"),
    Column("currency_exponent", SmallInteger, nullable=False, comment="minor-unit digits"),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("livemode", Boolean, nullable=False, comment="false: a test ledger (0012)"),
    Index("ix_ledgers_livemode", "livemode", "id"),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ledger_id", Uuid, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("normal_balance", Text, nullable=False, comment="credit: owed by the platform"),
    Column("currency", Text, nullable=False),
    Column("external_id", Text),
    Column("metadata", JSONB, nullable=False),
    Column(
        "pending_debits", BigInteger, nullable=False, comment="sum of pending debits, minor units"
    ),
    Column("pending_credits", BigInteger, nullable=False, comment="sum of pending credits"),
    Column("posted_debits", BigInteger, nullable=False, comment="sum of posted debits"),
    Column("posted_credits", BigInteger, nullable=False, comment="sum of posted credits"),
    Column("lock_version", BigInteger, nullable=False, comment="+1 on every balance change"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ledger_id", Uuid, ForeignKey("ledgers.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("external_id", Text),
    Column("description", Text),
    Column("metadata", JSONB, nullable=False),
    Column("total_amount", BigInteger, nullable=False, comment="sum of debits = sum of credits"),
    Column("request_hash", Text, comment="hash of the creating request, for idempotency"),
    Column("reverses_id", Uuid, ForeignKey("ledger_transactions.id")),
    Column("reversed_by_id", Uuid, ForeignKey("ledger_transactions.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("posted_at", DateTime(timezone=True)),
    Column("archived_at", DateTime(timezone=True)),
    Column(
        "created_xid",
        XID8(),
        nullable=False,
        comment="the database transaction that wrote it; only it may write the entries",
    ),
    Index("ix_ledger_transactions_ledger_id", "ledger_id", "id"),
    Index("ix_ledger_transactions_effective_at", "ledger_id", "effective_at"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("transaction_id", Uuid, nullable=False),
    Column("ledger_id", Uuid, nullable=False),
    Column("account_id", Uuid, nullable=False),
    Column("direction", Text, nullable=False),
    Column("amount", BigInteger, nullable=False, comment="positive, minor units"),
    Column("ordinal", SmallInteger, nullable=False, comment="position in its transaction"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_ledger_entries_transaction_id", "transaction_id"),
    Index("ix_ledger_entries_account_id", "account_id", "id"),
)
