"""Payout accounts that failed: a payout that fails because of its destination (the account is
closed, not found, or its number is invalid) marks the seller's payout account ``failed``, with
the failure code, the payout and when, in the same database transaction as the payout's own
failure. Nothing is paid to a failed account (a scheduled run skips ``payout_account_failed``, a
manual payout is refused) until a new payout account is set, which makes it ``active`` again.

Revision ID: 0008_payout_account_status
Revises: 0007_entries_per_statement
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_payout_account_status"
down_revision: str | None = "0007_entries_per_statement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        r"""
ALTER TABLE payout_accounts
    ADD COLUMN status text NOT NULL DEFAULT 'active'
        CONSTRAINT ck_payout_accounts_status CHECK (status IN ('active', 'failed')),
    ADD COLUMN failure_code text,
    ADD COLUMN failed_payout_id text,
    ADD COLUMN failed_at timestamptz,
    -- A failed account says why and since when; an active one carries no stale failure.
    ADD CONSTRAINT ck_payout_accounts_failure CHECK (
        (status = 'failed') = (failure_code IS NOT NULL)
        AND (failure_code IS NULL) = (failed_payout_id IS NULL)
        AND (failure_code IS NULL) = (failed_at IS NULL)
    );
"""
    )


def downgrade() -> None:
    op.execute(
        r"""
ALTER TABLE payout_accounts
    DROP CONSTRAINT ck_payout_accounts_failure,
    DROP COLUMN failed_at,
    DROP COLUMN failed_payout_id,
    DROP COLUMN failure_code,
    DROP COLUMN status;
"""
    )
