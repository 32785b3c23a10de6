"""Test clocks: a time of their own for the sellers and wallets created on them.

A clock keeps its ``frozen_time`` (the clocked objects' now); while an advance runs it is
``advancing`` towards ``advance_to`` and ``frozen_time`` steps through every moment something of
its objects falls due (a hold's end, a reserve's release, an expiry, a dispute's deadline, a
scheduled payout), never past the target. ``advance_count`` numbers the advances (the advance
workflow's id is ``test-clock/<id>/<n>``). Sellers and wallets name their clock
(``test_clock_id``, fixed at creation); a clock that still has objects cannot be deleted.

Revision ID: 0013_test_clocks
Revises: 0012_test_mode
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_test_clocks"
down_revision: str | None = "0012_test_mode"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        r"""
CREATE TABLE test_clocks (
    id text PRIMARY KEY
        CONSTRAINT ck_test_clocks_id CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    name text NOT NULL CONSTRAINT ck_test_clocks_name CHECK (length(name) BETWEEN 1 AND 255),
    frozen_time timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'ready'
        CONSTRAINT ck_test_clocks_status CHECK (status IN ('ready', 'advancing')),
    -- The target of the advance under way (exactly while advancing), never behind the clock.
    advance_to timestamptz,
    advance_count integer NOT NULL DEFAULT 0
        CONSTRAINT ck_test_clocks_advance_count CHECK (advance_count >= 0),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT ck_test_clocks_advancing
        CHECK ((status = 'advancing') = (advance_to IS NOT NULL)),
    CONSTRAINT ck_test_clocks_forward CHECK (advance_to IS NULL OR advance_to >= frozen_time)
);

ALTER TABLE sellers ADD COLUMN test_clock_id text
    CONSTRAINT fk_sellers_test_clock_id_test_clocks REFERENCES test_clocks (id);
CREATE INDEX ix_sellers_test_clock_id ON sellers (test_clock_id) WHERE test_clock_id IS NOT NULL;

ALTER TABLE wallets ADD COLUMN test_clock_id text
    CONSTRAINT fk_wallets_test_clock_id_test_clocks REFERENCES test_clocks (id);
CREATE INDEX ix_wallets_test_clock_id ON wallets (test_clock_id) WHERE test_clock_id IS NOT NULL;

-- A seller or a wallet stays on the clock it was created on.
CREATE FUNCTION test_clock_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.test_clock_id IS DISTINCT FROM OLD.test_clock_id THEN
        RAISE EXCEPTION 'the test clock of % % cannot change', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sellers_test_clock_fixed BEFORE UPDATE OF test_clock_id ON sellers
    FOR EACH ROW EXECUTE FUNCTION test_clock_fixed();
CREATE TRIGGER wallets_test_clock_fixed BEFORE UPDATE OF test_clock_id ON wallets
    FOR EACH ROW EXECUTE FUNCTION test_clock_fixed();
"""
    )


def downgrade() -> None:
    op.execute(
        r"""
DROP TRIGGER wallets_test_clock_fixed ON wallets;
DROP TRIGGER sellers_test_clock_fixed ON sellers;
DROP FUNCTION test_clock_fixed();
ALTER TABLE wallets DROP COLUMN test_clock_id;
ALTER TABLE sellers DROP COLUMN test_clock_id;
DROP TABLE test_clocks;
"""
    )
