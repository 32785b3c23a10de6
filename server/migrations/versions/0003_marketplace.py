"""Marketplace: platform ledgers per currency, sellers, earnings (holds and rolling reserves),
disputes.

Money lives in the ledger; these tables say which ledger transaction belongs to which order,
seller or dispute, and where each one is in its life. Amounts are BIGINT minor units with the
same CHECKs the Python code applies, so a writer that bypasses ``marketplace`` cannot store an
impossible earning (fee above the amount, net that is not amount - fee, a reserve above net).

Revision ID: 0003_marketplace
Revises: 0002_api
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_marketplace"
down_revision: str | None = "0002_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        r"""
-- One platform ledger per currency; its system accounts are found by external_id
-- ('platform:clearing', ...) inside that ledger.
CREATE TABLE platform_ledgers (
    currency text PRIMARY KEY
        CONSTRAINT ck_platform_ledgers_currency CHECK (currency ~ '^[A-Z]{3}$'),
    ledger_id uuid NOT NULL CONSTRAINT uq_platform_ledgers_ledger_id UNIQUE REFERENCES ledgers (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sellers (
    id text PRIMARY KEY
        CONSTRAINT ck_sellers_id CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    name text NOT NULL CONSTRAINT ck_sellers_name CHECK (length(btrim(name)) > 0),
    currency text NOT NULL REFERENCES platform_ledgers (currency),
    hold_period_seconds bigint NOT NULL
        CONSTRAINT ck_sellers_hold_period CHECK (hold_period_seconds BETWEEN 0 AND 31622400),
    reserve_percent_bp integer NOT NULL DEFAULT 0
        CONSTRAINT ck_sellers_reserve_percent CHECK (reserve_percent_bp BETWEEN 0 AND 10000),
    reserve_period_seconds bigint
        CONSTRAINT ck_sellers_reserve_period CHECK (reserve_period_seconds BETWEEN 1 AND 31622400),
    ledger_account_id uuid NOT NULL CONSTRAINT uq_sellers_ledger_account_id UNIQUE
        REFERENCES ledger_accounts (id),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- A reserve has both a percent and a period, or neither.
    CONSTRAINT ck_sellers_reserve
        CHECK ((reserve_percent_bp = 0) = (reserve_period_seconds IS NULL))
);

CREATE TABLE earnings (
    order_id text PRIMARY KEY
        CONSTRAINT ck_earnings_order_id CHECK (length(order_id) BETWEEN 1 AND 200),
    seller_id text NOT NULL REFERENCES sellers (id),
    currency text NOT NULL,
    amount bigint NOT NULL CONSTRAINT ck_earnings_amount CHECK (amount > 0),
    fee bigint NOT NULL CONSTRAINT ck_earnings_fee CHECK (fee >= 0 AND fee <= amount),
    net bigint NOT NULL,
    ledger_transaction_id uuid NOT NULL CONSTRAINT uq_earnings_ledger_transaction_id UNIQUE
        REFERENCES ledger_transactions (id),
    status text NOT NULL CONSTRAINT ck_earnings_status
        CHECK (status IN ('on_hold', 'posted', 'cancelled', 'refunded')),
    hold_until timestamptz NOT NULL,
    posted_at timestamptz,
    cancelled_at timestamptz,
    -- Rolling reserve, decided at booking from the seller's terms then; held when the earning
    -- posts, released reserve_period_seconds later.
    reserve_percent_bp integer NOT NULL DEFAULT 0
        CONSTRAINT ck_earnings_reserve_percent CHECK (reserve_percent_bp BETWEEN 0 AND 10000),
    reserve_period_seconds bigint,
    reserve_amount bigint NOT NULL DEFAULT 0,
    reserve_transaction_id uuid REFERENCES ledger_transactions (id),
    reserve_release_at timestamptz,
    reserve_released_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_earnings_net CHECK (net = amount - fee),
    CONSTRAINT ck_earnings_reserve_amount CHECK (reserve_amount >= 0 AND reserve_amount <= net),
    CONSTRAINT ck_earnings_posted CHECK ((status <> 'posted' OR posted_at IS NOT NULL)
                                         AND (status <> 'on_hold' OR posted_at IS NULL)),
    CONSTRAINT ck_earnings_reserve_held CHECK (
        (reserve_transaction_id IS NULL) = (reserve_release_at IS NULL)
        AND (reserve_released_at IS NULL OR reserve_transaction_id IS NOT NULL))
);
CREATE INDEX ix_earnings_seller_id ON earnings (seller_id, order_id);
CREATE INDEX ix_earnings_on_hold ON earnings (seller_id, hold_until) WHERE status = 'on_hold';
CREATE INDEX ix_earnings_reserve_open ON earnings (seller_id, reserve_release_at)
    WHERE reserve_transaction_id IS NOT NULL AND reserve_released_at IS NULL;

CREATE TABLE disputes (
    id text PRIMARY KEY
        CONSTRAINT ck_disputes_id CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    seller_id text NOT NULL REFERENCES sellers (id),
    order_id text NOT NULL
        CONSTRAINT ck_disputes_order_id CHECK (length(order_id) BETWEEN 1 AND 200),
    currency text NOT NULL,
    amount bigint NOT NULL CONSTRAINT ck_disputes_amount CHECK (amount > 0),
    reason text NOT NULL DEFAULT '',
    status text NOT NULL CONSTRAINT ck_disputes_status CHECK (status IN ('open', 'won', 'lost')),
    deadline timestamptz NOT NULL,
    ledger_transaction_id uuid NOT NULL CONSTRAINT uq_disputes_ledger_transaction_id UNIQUE
        REFERENCES ledger_transactions (id),
    resolved_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_disputes_resolved CHECK ((status = 'open') = (resolved_at IS NULL))
);
CREATE INDEX ix_disputes_seller_id ON disputes (seller_id, id);
CREATE INDEX ix_disputes_open ON disputes (seller_id) WHERE status = 'open';
"""
    )


def downgrade() -> None:
    for table in ("disputes", "earnings", "sellers", "platform_ledgers"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
