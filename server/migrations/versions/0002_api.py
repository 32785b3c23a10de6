"""API: hashed API keys and stored idempotent responses.

Revision ID: 0002_api
Revises: 0001_ledger
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_api"
down_revision: str | None = "0001_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
-- Only the SHA-256 of a key is stored; key_prefix (its first characters) is for display.
CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CONSTRAINT ck_api_keys_role CHECK (role IN ('admin', 'operator', 'seller')),
    seller_id text,
    key_prefix text NOT NULL,
    key_hash text NOT NULL CONSTRAINT uq_api_keys_key_hash UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT ck_api_keys_seller CHECK ((role = 'seller') = (seller_id IS NOT NULL))
);

-- One row per (API key, Idempotency-Key): the first successful response, replayed for a retry.
-- The row is inserted first in the request's own database transaction (so a concurrent
-- duplicate waits on the primary key) and completed with the response before the commit, so
-- a committed row always has its response and the request's writes; status_code and
-- response_body are NULL only inside that uncommitted transaction.
CREATE TABLE idempotency_keys (
    api_key_id uuid NOT NULL REFERENCES api_keys (id),
    key text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    request_hash text NOT NULL,
    status_code integer,
    response_body bytea,
    response_headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_idempotency_keys PRIMARY KEY (api_key_id, key),
    CONSTRAINT ck_idempotency_keys_response
        CHECK ((status_code IS NULL) = (response_body IS NULL))
);
"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS idempotency_keys")
    op.execute("DROP TABLE IF EXISTS api_keys")
