"""Payouts: destinations, payouts, scheduled runs, refunds, bank-statement reconciliation.

Money still lives in the ledger only; these tables say which ledger transaction belongs to which
payout or refund and where each one is in its life:

* a payout reserves the seller's money with a pending debit seller -> payouts_in_transit
  (``payout:<id>``, written only if the seller's available balance stays >= 0); paid posts it,
  failed or cancelled archives it, returned reverses the posted one (``payout:<id>:return``);
* a refund of an earning on hold archives the pending earning and, for a partial refund, books
  the remainder again (``earning:<order>:rebook:<n>``); a refund of a posted earning debits the
  seller (``refund:<id>``), which may take the seller below zero.

Revision ID: 0004_payouts
Revises: 0003_marketplace
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_payouts"
down_revision: str | None = "0003_marketplace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        r"""
-- Where a seller is paid. The full number is needed to pay; every response masks it.
CREATE TABLE payout_accounts (
    seller_id text PRIMARY KEY REFERENCES sellers (id),
    account_number text NOT NULL
        CONSTRAINT ck_payout_accounts_account_number CHECK (account_number ~ '^[0-9]{4,34}$'),
    routing_number text NOT NULL
        CONSTRAINT ck_payout_accounts_routing_number CHECK (routing_number ~ '^[0-9]{9}$'),
    holder_name text NOT NULL
        CONSTRAINT ck_payout_accounts_holder_name CHECK (length(btrim(holder_name)) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payouts (
    id text PRIMARY KEY
        CONSTRAINT ck_payouts_id CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    seller_id text NOT NULL REFERENCES sellers (id),
    currency text NOT NULL,
    amount bigint NOT NULL CONSTRAINT ck_payouts_amount CHECK (amount > 0),
    status text NOT NULL CONSTRAINT ck_payouts_status
        CHECK (status IN ('pending', 'processing', 'paid', 'failed', 'returned', 'cancelled')),
    origin text NOT NULL CONSTRAINT ck_payouts_origin CHECK (origin IN ('manual', 'scheduled')),
    -- The destination as it was when the payout was made (a later change does not move it).
    account_number text NOT NULL,
    routing_number text NOT NULL,
    holder_name text NOT NULL,
    ledger_transaction_id uuid NOT NULL CONSTRAINT uq_payouts_ledger_transaction_id UNIQUE
        REFERENCES ledger_transactions (id),
    return_transaction_id uuid CONSTRAINT uq_payouts_return_transaction_id UNIQUE
        REFERENCES ledger_transactions (id),
    rail_reference text,
    failure_code text,
    failure_reason text,
    submitted_at timestamptz,
    paid_at timestamptz,
    failed_at timestamptz,
    returned_at timestamptz,
    cancelled_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_payouts_paid CHECK (status NOT IN ('paid', 'returned') OR paid_at IS NOT NULL),
    CONSTRAINT ck_payouts_returned CHECK (
        (status = 'returned') = (return_transaction_id IS NOT NULL AND returned_at IS NOT NULL)),
    CONSTRAINT ck_payouts_failed CHECK (status <> 'failed' OR failed_at IS NOT NULL)
);
CREATE INDEX ix_payouts_seller_id ON payouts (seller_id, id);
CREATE INDEX ix_payouts_status ON payouts (status, id);

-- What each firing of a seller's payout schedule did: started a payout, or skipped and why.
CREATE TABLE payout_runs (
    id text PRIMARY KEY,
    seller_id text NOT NULL REFERENCES sellers (id),
    scheduled_at timestamptz NOT NULL,
    outcome text NOT NULL CONSTRAINT ck_payout_runs_outcome CHECK (outcome IN ('started', 'skipped')),
    -- No foreign key: the run decides and records first, then starts the payout workflow,
    -- which writes the payouts row when it reserves the money (moments later).
    payout_id text CONSTRAINT uq_payout_runs_payout_id UNIQUE,
    amount bigint CONSTRAINT ck_payout_runs_amount CHECK (amount IS NULL OR amount > 0),
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_payout_runs_started CHECK ((outcome = 'started') = (payout_id IS NOT NULL)),
    CONSTRAINT ck_payout_runs_skipped CHECK (outcome <> 'skipped' OR reason IS NOT NULL),
    CONSTRAINT ck_payout_runs_started_amount CHECK (outcome <> 'started' OR amount IS NOT NULL)
);
CREATE INDEX ix_payout_runs_seller_id ON payout_runs (seller_id, scheduled_at);

-- Refunds of orders (gross amounts); the fee is refunded in proportion.
ALTER TABLE earnings ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0;
ALTER TABLE earnings ADD CONSTRAINT ck_earnings_refunded_amount
    CHECK (refunded_amount >= 0 AND refunded_amount <= amount);

CREATE TABLE refunds (
    id text PRIMARY KEY
        CONSTRAINT ck_refunds_id CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$'),
    order_id text NOT NULL REFERENCES earnings (order_id),
    seller_id text NOT NULL REFERENCES sellers (id),
    currency text NOT NULL,
    amount bigint NOT NULL CONSTRAINT ck_refunds_amount CHECK (amount > 0),
    fee_amount bigint NOT NULL CONSTRAINT ck_refunds_fee_amount CHECK (fee_amount >= 0),
    seller_amount bigint NOT NULL CONSTRAINT ck_refunds_seller_amount CHECK (seller_amount >= 0),
    -- during_hold: the pending earning was archived (and the remainder booked again);
    -- after_posting: the seller was debited.
    kind text NOT NULL CONSTRAINT ck_refunds_kind CHECK (kind IN ('during_hold', 'after_posting')),
    status text NOT NULL CONSTRAINT ck_refunds_status CHECK (status IN ('pending', 'completed')),
    ledger_transaction_id uuid REFERENCES ledger_transactions (id),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CONSTRAINT ck_refunds_split CHECK (fee_amount + seller_amount = amount)
);
CREATE INDEX ix_refunds_order_id ON refunds (order_id);

-- Bank statements and how each line matched the payouts.
CREATE TABLE reconciliation_statements (
    id text PRIMARY KEY,
    filename text,
    content_sha256 text NOT NULL,
    line_count integer NOT NULL,
    summary jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reconciliation_lines (
    statement_id text NOT NULL REFERENCES reconciliation_statements (id),
    line_number integer NOT NULL,
    value_date date,
    amount bigint,
    currency text,
    reference text,
    -- matched, unmatched, amount_mismatch, currency_mismatch, duplicate (a further line for a
    -- payout an earlier line already named), invalid (a line that could not be read), or
    -- missing_from_statement (a paid payout the statement does not show; line_number < 0).
    result text NOT NULL CONSTRAINT ck_reconciliation_lines_result
        CHECK (result IN ('matched', 'unmatched', 'amount_mismatch', 'currency_mismatch',
                          'duplicate', 'invalid', 'missing_from_statement')),
    payout_id text REFERENCES payouts (id),
    expected_amount bigint,
    detail text,
    CONSTRAINT pk_reconciliation_lines PRIMARY KEY (statement_id, line_number)
);
"""
    )


def downgrade() -> None:
    for table in (
        "reconciliation_lines",
        "reconciliation_statements",
        "refunds",
        "payout_runs",
        "payouts",
        "payout_accounts",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("ALTER TABLE earnings DROP COLUMN IF EXISTS refunded_amount")
