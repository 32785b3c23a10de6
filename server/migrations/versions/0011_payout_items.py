"""Itemized payouts: what each payout pays out, line by line (``marketplace.payout_items``).

* ``payout_items``: the lines of a payout, written in the transaction that reserves it. A line
  is one posted ledger entry of the seller's account (``ledger_entry_id``: an earning, a refund,
  a chargeback, a returned payout's credit, an adjustment) or a line of no entry (an amount held
  back, brought or carried forward, an instant payout's fee, a payout made before itemization).
  The lines of a payout add up to its amount.
* ``uq_payout_items_live_entry``: an entry is in at most one **live** item: a partial unique
  index over the items not released. A failed or cancelled payout releases its items
  (``released_at``) in the transaction that marks it so, and the entries can be paid again.
* ``payouts.item_count``: the number of the payout's lines; NULL for a payout reserved before
  this revision (its items were not recorded).

Revision ID: 0011_payout_items
Revises: 0010_wallets
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_payout_items"
down_revision: str | None = "0010_wallets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTRY_KINDS = ("earning", "refund", "chargeback", "payout_return", "adjustment")
OTHER_KINDS = (
    "reserve_held",
    "dispute_open",
    "payout_in_transit",
    "pending_debit",
    "payout_before_itemization",
    "brought_forward",
    "carried_forward",
    "instant_fee",
)


def _listed(kinds: Sequence[str]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


def upgrade() -> None:
    op.execute(
        f"""
CREATE TABLE payout_items (
    payout_id text NOT NULL REFERENCES payouts (id),
    line integer NOT NULL CONSTRAINT ck_payout_items_line CHECK (line >= 1),
    seller_id text NOT NULL REFERENCES sellers (id),
    kind text NOT NULL,
    reference text,
    ledger_entry_id uuid REFERENCES ledger_entries (id),
    ledger_transaction_id uuid REFERENCES ledger_transactions (id),
    amount bigint NOT NULL CONSTRAINT ck_payout_items_amount CHECK (amount <> 0),
    effective_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    released_at timestamptz,
    CONSTRAINT pk_payout_items PRIMARY KEY (payout_id, line),
    -- An entry's line names its entry; the others name none.
    CONSTRAINT ck_payout_items_kind CHECK (
        (kind IN ({_listed(ENTRY_KINDS)}) AND ledger_entry_id IS NOT NULL)
        OR (kind IN ({_listed(OTHER_KINDS)}) AND ledger_entry_id IS NULL)
    )
);
-- Every ledger entry is paid out by at most one live payout.
CREATE UNIQUE INDEX uq_payout_items_live_entry ON payout_items (ledger_entry_id)
    WHERE released_at IS NULL AND ledger_entry_id IS NOT NULL;
-- A reservation sums the seller's live lines of no entry (what is brought forward).
CREATE INDEX ix_payout_items_seller_id ON payout_items (seller_id, kind)
    WHERE released_at IS NULL AND ledger_entry_id IS NULL;
ALTER TABLE payouts
    ADD COLUMN item_count integer
        CONSTRAINT ck_payouts_item_count CHECK (item_count >= 0);
"""
    )


def downgrade() -> None:
    op.execute(
        """
ALTER TABLE payouts DROP COLUMN item_count;
DROP TABLE payout_items;
"""
    )
