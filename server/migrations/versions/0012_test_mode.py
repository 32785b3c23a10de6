"""Test mode: every object is live or test.

The flag is stored on the roots only: ledgers (their accounts, transactions and entries are in
the ledger's mode), sellers and wallets (what they own: earnings, holds, disputes, refunds,
payouts, payout runs, lots, spends, transfers), webhook endpoints (their deliveries), and the
event streams and events (copied from the stream's owner, so that listing and fanning out
events filter on the event row itself). API keys are live or test too.

The platform's ledgers become one per currency and mode: test money never touches a live ledger.
A seller's (currency, mode) must have its platform ledger, whose ledger is of that mode; a
seller's or wallet's ledger account must be in a ledger of the object's mode. Everything that
exists before this migration is live.

Revision ID: 0012_test_mode
Revises: 0011_payout_items
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_test_mode"
down_revision: str | None = "0011_payout_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# marketplace_record_events (0006) with the event's mode: the stream's (set from its owner when
# the stream is created), and a fan-out to the endpoints of that mode only.
RECORD_EVENTS = r"""
CREATE OR REPLACE FUNCTION marketplace_record_events(p_events jsonb, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_notified bigint;
BEGIN
    IF jsonb_array_length(p_events) = 0 THEN
        RETURN;
    END IF;
    WITH input AS (
        SELECT * FROM jsonb_to_recordset(p_events) AS x(
            ord int, id text, seller_id text, type text, data jsonb, available bigint)
    ), counts AS (
        SELECT i.seller_id, count(*) AS n,
               (array_agg(i.available ORDER BY i.ord DESC)
                    FILTER (WHERE i.available IS NOT NULL))[1] AS available
          FROM input i GROUP BY i.seller_id
    ), stream AS (
        INSERT INTO event_streams AS s (seller_id, last_sequence, last_available)
        SELECT c.seller_id, c.n, c.available FROM counts c ORDER BY c.seller_id
        ON CONFLICT (seller_id) DO UPDATE
            SET last_sequence = s.last_sequence + EXCLUDED.last_sequence,
                last_available = COALESCE(EXCLUDED.last_available, s.last_available)
        RETURNING s.seller_id, s.last_sequence, s.livemode
    ), ev AS (
        INSERT INTO events (id, seller_id, sequence, type, data, created_at, livemode)
        SELECT i.id, i.seller_id,
               st.last_sequence - c.n
                   + row_number() OVER (PARTITION BY i.seller_id ORDER BY i.ord),
               i.type, i.data, p_now, st.livemode
          FROM input i JOIN stream st ON st.seller_id = i.seller_id
          JOIN counts c ON c.seller_id = i.seller_id
         ORDER BY i.ord
        RETURNING events.id, events.seller_id, events.sequence, events.type, events.livemode
    ), fan AS (
        INSERT INTO webhook_deliveries
            (id, event_id, endpoint_id, seller_id, sequence, status, created_at, updated_at)
        SELECT 'whd_' || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint),
                              12, '0')
                      || substr(md5(random()::text || w.id || ev.id), 1, 20),
               ev.id, w.id, ev.seller_id, ev.sequence, 'pending', p_now, p_now
          FROM ev JOIN webhook_endpoints w ON w.livemode = ev.livemode
         WHERE w.deleted_at IS NULL
           AND (ev.type = ANY (w.event_types) OR '*' = ANY (w.event_types))
        RETURNING webhook_deliveries.endpoint_id, webhook_deliveries.seller_id
    )
    SELECT count(pg_notify('webhook_deliveries', f.endpoint_id || ' ' || f.seller_id))
      INTO v_notified
      FROM (SELECT DISTINCT fan.endpoint_id, fan.seller_id FROM fan) f;
END $$;
"""

# As 0006 wrote it (and 0010 left it).
RECORD_EVENTS_BEFORE = (
    RECORD_EVENTS.replace(
        "RETURNING s.seller_id, s.last_sequence, s.livemode",
        "RETURNING s.seller_id, s.last_sequence",
    )
    .replace("created_at, livemode)", "created_at)")
    .replace("i.type, i.data, p_now, st.livemode", "i.type, i.data, p_now")
    .replace(", events.type, events.livemode", ", events.type")
    .replace(
        "FROM ev JOIN webhook_endpoints w ON w.livemode = ev.livemode",
        "FROM ev CROSS JOIN webhook_endpoints w",
    )
)

# An event stream is a seller's (its id) or a wallet's ('wallet/<id>'), and of its owner's mode.
STREAM_OWNER = r"""
CREATE OR REPLACE FUNCTION event_streams_owner() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_livemode boolean;
BEGIN
    IF NEW.seller_id LIKE 'wallet/%' THEN
        SELECT livemode INTO v_livemode FROM wallets WHERE id = substr(NEW.seller_id, 8);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event stream % names no wallet', NEW.seller_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSE
        SELECT livemode INTO v_livemode FROM sellers WHERE id = NEW.seller_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event stream % names no seller', NEW.seller_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    NEW.livemode := v_livemode;
    RETURN NEW;
END $$;
"""

STREAM_OWNER_BEFORE = r"""
CREATE OR REPLACE FUNCTION event_streams_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seller_id LIKE 'wallet/%' THEN
        IF NOT EXISTS (SELECT 1 FROM wallets WHERE id = substr(NEW.seller_id, 8)) THEN
            RAISE EXCEPTION 'event stream % names no wallet', NEW.seller_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM sellers WHERE id = NEW.seller_id) THEN
        RAISE EXCEPTION 'event stream % names no seller', NEW.seller_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.execute(
        r"""
ALTER TABLE api_keys ADD COLUMN livemode boolean NOT NULL DEFAULT true;

ALTER TABLE ledgers ADD COLUMN livemode boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT uq_ledgers_id_livemode UNIQUE (id, livemode);
CREATE INDEX ix_ledgers_livemode ON ledgers (livemode, id);

-- One platform ledger per currency and mode, in a ledger of that mode.
ALTER TABLE sellers DROP CONSTRAINT sellers_currency_fkey;
ALTER TABLE platform_ledgers ADD COLUMN livemode boolean NOT NULL DEFAULT true,
    DROP CONSTRAINT platform_ledgers_pkey,
    ADD CONSTRAINT pk_platform_ledgers PRIMARY KEY (currency, livemode),
    ADD CONSTRAINT fk_platform_ledgers_ledger_id_ledgers
        FOREIGN KEY (ledger_id, livemode) REFERENCES ledgers (id, livemode);

ALTER TABLE sellers ADD COLUMN livemode boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT fk_sellers_currency_platform_ledgers
        FOREIGN KEY (currency, livemode) REFERENCES platform_ledgers (currency, livemode);
CREATE INDEX ix_sellers_livemode ON sellers (livemode, id);

ALTER TABLE wallets ADD COLUMN livemode boolean NOT NULL DEFAULT true;
CREATE INDEX ix_wallets_livemode ON wallets (livemode, id);

-- A seller's or a wallet's ledger account is in a ledger of the object's mode.
CREATE FUNCTION ledger_account_mode_matches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_accounts a JOIN ledgers l ON l.id = a.ledger_id
                    WHERE a.id = NEW.ledger_account_id AND l.livemode = NEW.livemode) THEN
        RAISE EXCEPTION '% %: ledger account % is not in a ledger of its mode',
            TG_TABLE_NAME, NEW.id, NEW.ledger_account_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_' || TG_TABLE_NAME || '_mode';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sellers_mode BEFORE INSERT OR UPDATE OF ledger_account_id, livemode ON sellers
    FOR EACH ROW EXECUTE FUNCTION ledger_account_mode_matches();
CREATE TRIGGER wallets_mode BEFORE INSERT OR UPDATE OF ledger_account_id, livemode ON wallets
    FOR EACH ROW EXECUTE FUNCTION ledger_account_mode_matches();

ALTER TABLE webhook_endpoints ADD COLUMN livemode boolean NOT NULL DEFAULT true;
CREATE INDEX ix_webhook_endpoints_livemode ON webhook_endpoints (livemode, id);

-- Events: the mode of their stream's owner, kept on the event for the lists and the fan-out.
ALTER TABLE event_streams ADD COLUMN livemode boolean NOT NULL DEFAULT true;
ALTER TABLE events ADD COLUMN livemode boolean NOT NULL DEFAULT true;
CREATE INDEX ix_events_livemode_position ON events (livemode, position);
"""
    )
    op.execute(STREAM_OWNER)
    op.execute(RECORD_EVENTS)


def downgrade() -> None:
    # Test-mode data has no place in a schema without modes: refuse rather than make it live.
    op.execute(
        r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledgers WHERE NOT livemode)
       OR EXISTS (SELECT 1 FROM webhook_endpoints WHERE NOT livemode)
       OR EXISTS (SELECT 1 FROM api_keys WHERE NOT livemode) THEN
        RAISE EXCEPTION 'test-mode data exists: delete it before downgrading below 0012';
    END IF;
END $$;
"""
    )
    op.execute(RECORD_EVENTS_BEFORE)
    op.execute(STREAM_OWNER_BEFORE)
    op.execute(
        r"""
DROP INDEX ix_events_livemode_position;
ALTER TABLE events DROP COLUMN livemode;
ALTER TABLE event_streams DROP COLUMN livemode;
DROP INDEX ix_webhook_endpoints_livemode;
ALTER TABLE webhook_endpoints DROP COLUMN livemode;
DROP TRIGGER wallets_mode ON wallets;
DROP TRIGGER sellers_mode ON sellers;
DROP FUNCTION ledger_account_mode_matches();
DROP INDEX ix_wallets_livemode;
ALTER TABLE wallets DROP COLUMN livemode;
DROP INDEX ix_sellers_livemode;
ALTER TABLE sellers DROP CONSTRAINT fk_sellers_currency_platform_ledgers;
ALTER TABLE sellers DROP COLUMN livemode;
ALTER TABLE platform_ledgers DROP CONSTRAINT fk_platform_ledgers_ledger_id_ledgers,
    DROP CONSTRAINT pk_platform_ledgers,
    ADD CONSTRAINT platform_ledgers_pkey PRIMARY KEY (currency);
ALTER TABLE platform_ledgers DROP COLUMN livemode;
ALTER TABLE sellers ADD CONSTRAINT sellers_currency_fkey
    FOREIGN KEY (currency) REFERENCES platform_ledgers (currency);
DROP INDEX ix_ledgers_livemode;
ALTER TABLE ledgers DROP CONSTRAINT uq_ledgers_id_livemode, DROP COLUMN livemode;
ALTER TABLE api_keys DROP COLUMN livemode;
"""
    )
