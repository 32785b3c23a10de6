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
* The lines add up, checked by PostgreSQL too: after every INSERT statement into
  ``payout_items`` (a payout's lines are written in one), each payout it touched must have
  ``item_count`` lines summing to its amount (``payout_items_add_up``, SQLSTATE 23514
  ``ck_payout_items_add_up``). A line never changes, except ``released_at`` set once
  (``payout_items_fixed``).

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

ENTRY_KINDS = ("earning", "refund", "chargeback", "payout_returned", "adjustment")
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

CREATE FUNCTION payout_items_add_up() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT p.id, p.amount, p.item_count, sum(i.amount) AS total, count(*) AS lines
          FROM (SELECT DISTINCT payout_id FROM added) a
          JOIN payouts p ON p.id = a.payout_id
          JOIN payout_items i ON i.payout_id = p.id
         GROUP BY p.id, p.amount, p.item_count
        HAVING sum(i.amount) <> p.amount OR count(*) IS DISTINCT FROM p.item_count
    LOOP
        RAISE EXCEPTION 'the % lines of payout % add up to %, not to its amount % in % lines',
            v.lines, v.id, v.total, v.amount, v.item_count
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_payout_items_add_up';
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER payout_items_add_up AFTER INSERT ON payout_items
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION payout_items_add_up();

CREATE FUNCTION payout_items_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.released_at IS NOT NULL OR NEW.released_at IS NULL
       OR (NEW.payout_id, NEW.line, NEW.seller_id, NEW.kind, NEW.reference, NEW.ledger_entry_id,
           NEW.ledger_transaction_id, NEW.amount, NEW.effective_at, NEW.created_at)
          IS DISTINCT FROM
          (OLD.payout_id, OLD.line, OLD.seller_id, OLD.kind, OLD.reference, OLD.ledger_entry_id,
           OLD.ledger_transaction_id, OLD.amount, OLD.effective_at, OLD.created_at) THEN
        RAISE EXCEPTION 'line % of payout % is fixed; only its release is written, once',
            OLD.line, OLD.payout_id USING ERRCODE = 'LC002';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payout_items_fixed BEFORE UPDATE ON payout_items
    FOR EACH ROW EXECUTE FUNCTION payout_items_fixed();
"""
    )


def downgrade() -> None:
    op.execute(
        """
ALTER TABLE payouts DROP COLUMN item_count;
DROP TABLE payout_items;
DROP FUNCTION payout_items_fixed();
DROP FUNCTION payout_items_add_up();
"""
    )
