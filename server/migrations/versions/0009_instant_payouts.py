"""Instant payouts: a payout's method and fee, and what the daily instant limit counts.

* ``payouts.method``: ``standard`` (the batch rail; every payout before this revision) or
  ``instant`` (a real-time rail, for a fee).
* ``payouts.fee``: the instant payout's fee in minor units, booked to the platform's fees revenue
  in the payout's own ledger transaction (the seller is debited amount + fee); 0 for standard
  payouts.
* ``sellers.instant_daily_limit``: a seller's own daily limit of instant payouts (minor units);
  NULL: the platform's (``PAYOUTS_INSTANT_DAILY_LIMIT``).
* ``instant_payout_days``: per seller and UTC day, the amounts of the instant payouts that count
  towards the daily limit (added by a conditional upsert that refuses to pass the limit, taken
  off again when one fails or is cancelled): the limit and the balances read one row.
* ``seller_balances.in_transit`` counts a payout's amount and fee while it is pending or
  processing (both are the payout's pending debit of the seller), so ``posted - available`` stays
  what is in reserve, in dispute and in transit.

Revision ID: 0009_instant_payouts
Revises: 0008_payout_account_status
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_instant_payouts"
down_revision: str | None = "0008_payout_account_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The payouts' contribution to in_transit, in the trigger functions 0006 generated.
_AMOUNT = "THEN amount ELSE 0 END"
_AMOUNT_AND_FEE = "THEN amount + fee ELSE 0 END"


def _rewrite_in_transit(old: str, new: str) -> str:
    return f"""
DO $$
DECLARE
    v_function text;
BEGIN
    FOREACH v_function IN ARRAY ARRAY['seller_balances_payouts_insert',
                                      'seller_balances_payouts_update'] LOOP
        EXECUTE replace(pg_get_functiondef(v_function::regproc), '{old}', '{new}');
    END LOOP;
END $$;
"""


def upgrade() -> None:
    op.execute(
        r"""
ALTER TABLE payouts
    ADD COLUMN method text NOT NULL DEFAULT 'standard'
        CONSTRAINT ck_payouts_method CHECK (method IN ('standard', 'instant')),
    ADD COLUMN fee bigint NOT NULL DEFAULT 0,
    -- Only an instant payout has a fee.
    ADD CONSTRAINT ck_payouts_fee CHECK (fee >= 0 AND (method = 'instant' OR fee = 0));
CREATE TABLE instant_payout_days (
    seller_id text NOT NULL REFERENCES sellers (id),
    day date NOT NULL,
    amount bigint NOT NULL CONSTRAINT ck_instant_payout_days_amount CHECK (amount >= 0),
    CONSTRAINT pk_instant_payout_days PRIMARY KEY (seller_id, day)
);
ALTER TABLE sellers
    ADD COLUMN instant_daily_limit bigint
        CONSTRAINT ck_sellers_instant_daily_limit CHECK (instant_daily_limit >= 0);
"""
    )
    op.execute(_rewrite_in_transit(_AMOUNT, _AMOUNT_AND_FEE))


def downgrade() -> None:
    op.execute(_rewrite_in_transit(_AMOUNT_AND_FEE, _AMOUNT))
    op.execute(
        r"""
ALTER TABLE sellers DROP COLUMN instant_daily_limit;
DROP TABLE instant_payout_days;
ALTER TABLE payouts
    DROP CONSTRAINT ck_payouts_fee,
    DROP COLUMN fee,
    DROP COLUMN method;
"""
    )
