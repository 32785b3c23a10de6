"""Wallets (stored value): a credit-normal ledger account per wallet, its lots of money (top-ups
and transfers in, each with an optional expiry), spends with the lots they consumed (so that a
refund knows what to restore), refunds, transfers between wallets, and the wallet's expiry clock
(when its expiry workflow looks next, and a wake asked for by a write whose lot expires sooner).

API keys get the ``wallet`` role, scoped to one wallet (``wallet_id``, set exactly for wallet
keys). Events of a wallet go to the outbox as a stream of their own, ``wallet/<wallet id>``
('/' is never part of a seller id): the event streams no longer reference ``sellers`` directly;
a trigger checks that a new stream belongs to a seller or a wallet.

Revision ID: 0010_wallets
Revises: 0009_instant_payouts
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_wallets"
down_revision: str | None = "0009_instant_payouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The event types as of 0005 (unchanged since), and the wallets' own.
BASE_EVENT_TYPES = (
    "earning.created",
    "earning.posted",
    "earning.refunded",
    "earning.cancelled",
    "dispute.opened",
    "dispute.won",
    "dispute.lost",
    "payout.created",
    "payout.paid",
    "payout.failed",
    "payout.returned",
    "payout.cancelled",
    "balance.available_changed",
)
WALLET_EVENT_TYPES = (
    "wallet.created",
    "wallet.top_up.pending",
    "wallet.top_up.settled",
    "wallet.top_up.failed",
    "wallet.top_up.expiry_changed",
    "wallet.spent",
    "wallet.spend.refunded",
    "wallet.transfer",
    "wallet.expired",
)


def _event_type_checks(types: Sequence[str]) -> str:
    listed = ", ".join(f"'{t}'" for t in types)
    return f"""
ALTER TABLE events DROP CONSTRAINT ck_events_type,
    ADD CONSTRAINT ck_events_type CHECK (type IN ({listed}));
ALTER TABLE webhook_endpoints DROP CONSTRAINT ck_webhook_endpoints_event_types,
    ADD CONSTRAINT ck_webhook_endpoints_event_types
        CHECK (cardinality(event_types) > 0 AND event_types <@ ARRAY[{listed}, '*']::text[]);
"""


def upgrade() -> None:
    op.execute(
        r"""
CREATE TABLE wallets (
    id text PRIMARY KEY CONSTRAINT ck_wallets_id CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    owner text NOT NULL CONSTRAINT ck_wallets_owner CHECK (length(owner) BETWEEN 1 AND 255),
    name text NOT NULL CONSTRAINT ck_wallets_name CHECK (length(name) BETWEEN 1 AND 255),
    currency text NOT NULL CONSTRAINT ck_wallets_currency CHECK (currency ~ '^[A-Z]{3}$'),
    ledger_account_id uuid NOT NULL CONSTRAINT uq_wallets_ledger_account_id UNIQUE
        REFERENCES ledger_accounts (id),
    metadata jsonb NOT NULL DEFAULT '{}',
    -- The expiry clock: when the wallet's expiry workflow looks next (NULL: nothing expires),
    -- and the earliest wake a write asked for since (with when it asked).
    expiry_timer_at timestamptz,
    expiry_wake_requested_at timestamptz,
    expiry_wake_requested_on timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_wallets_wake
        CHECK ((expiry_wake_requested_at IS NULL) = (expiry_wake_requested_on IS NULL))
);
CREATE INDEX ix_wallets_owner ON wallets (owner, id);
CREATE INDEX ix_wallets_expiry_wake ON wallets (expiry_wake_requested_on)
    WHERE expiry_wake_requested_on IS NOT NULL;
CREATE INDEX ix_wallets_expiry_timer ON wallets (expiry_timer_at)
    WHERE expiry_timer_at IS NOT NULL;

-- Lots: the wallet's money by where it came from. A top-up is one lot (pending until its funding
-- settles); a transfer in is one lot per expiry date of the money it moved. Spends, transfers
-- out and expiries take from ``remaining``; refunds give back to the lots a spend consumed.
CREATE TABLE wallet_lots (
    id text PRIMARY KEY,
    wallet_id text NOT NULL REFERENCES wallets (id),
    kind text NOT NULL CONSTRAINT ck_wallet_lots_kind CHECK (kind IN ('top_up', 'transfer')),
    amount bigint NOT NULL CONSTRAINT ck_wallet_lots_amount CHECK (amount > 0),
    remaining bigint NOT NULL,
    expired_amount bigint NOT NULL DEFAULT 0,
    expiry_count integer NOT NULL DEFAULT 0,
    status text NOT NULL CONSTRAINT ck_wallet_lots_status
        CHECK (status IN ('pending', 'settled', 'failed', 'expired')),
    expires_at timestamptz,
    ledger_transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
    transfer_id text,
    metadata jsonb NOT NULL DEFAULT '{}',
    settled_at timestamptz,
    failed_at timestamptz,
    expired_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_wallet_lots_remaining CHECK (remaining BETWEEN 0 AND amount),
    CONSTRAINT ck_wallet_lots_expired CHECK (expired_amount BETWEEN 0 AND amount),
    -- Nothing is left of a failed or expired lot; a transfer's lot names its transfer.
    CONSTRAINT ck_wallet_lots_empty CHECK (status NOT IN ('failed', 'expired') OR remaining = 0),
    CONSTRAINT ck_wallet_lots_transfer CHECK ((kind = 'transfer') = (transfer_id IS NOT NULL))
);
CREATE INDEX ix_wallet_lots_wallet ON wallet_lots (wallet_id, id);
CREATE INDEX ix_wallet_lots_expiring ON wallet_lots (wallet_id, expires_at)
    WHERE status = 'settled' AND remaining > 0 AND expires_at IS NOT NULL;

CREATE TABLE wallet_spends (
    id text PRIMARY KEY,
    wallet_id text NOT NULL REFERENCES wallets (id),
    amount bigint NOT NULL CONSTRAINT ck_wallet_spends_amount CHECK (amount > 0),
    refunded_amount bigint NOT NULL DEFAULT 0,
    description text NOT NULL,
    ledger_transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_wallet_spends_refunded CHECK (refunded_amount BETWEEN 0 AND amount)
);
CREATE INDEX ix_wallet_spends_wallet ON wallet_spends (wallet_id, id);

-- What each spend took from which lot, and how much of that was refunded.
CREATE TABLE wallet_spend_lots (
    spend_id text NOT NULL REFERENCES wallet_spends (id),
    lot_id text NOT NULL REFERENCES wallet_lots (id),
    amount bigint NOT NULL CONSTRAINT ck_wallet_spend_lots_amount CHECK (amount > 0),
    refunded bigint NOT NULL DEFAULT 0,
    CONSTRAINT pk_wallet_spend_lots PRIMARY KEY (spend_id, lot_id),
    CONSTRAINT ck_wallet_spend_lots_refunded CHECK (refunded BETWEEN 0 AND amount)
);

CREATE TABLE wallet_refunds (
    id text PRIMARY KEY,
    spend_id text NOT NULL REFERENCES wallet_spends (id),
    wallet_id text NOT NULL REFERENCES wallets (id),
    amount bigint NOT NULL CONSTRAINT ck_wallet_refunds_amount CHECK (amount > 0),
    ledger_transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_wallet_refunds_spend ON wallet_refunds (spend_id);

CREATE TABLE wallet_transfers (
    id text PRIMARY KEY,
    from_wallet_id text NOT NULL REFERENCES wallets (id),
    to_wallet_id text NOT NULL REFERENCES wallets (id),
    currency text NOT NULL,
    amount bigint NOT NULL CONSTRAINT ck_wallet_transfers_amount CHECK (amount > 0),
    description text NOT NULL DEFAULT '',
    ledger_transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_wallet_transfers_parties CHECK (from_wallet_id <> to_wallet_id)
);
CREATE INDEX ix_wallet_transfers_from ON wallet_transfers (from_wallet_id, id);
CREATE INDEX ix_wallet_transfers_to ON wallet_transfers (to_wallet_id, id);

ALTER TABLE api_keys
    ADD COLUMN wallet_id text,
    DROP CONSTRAINT ck_api_keys_role,
    ADD CONSTRAINT ck_api_keys_role CHECK (role IN ('admin', 'operator', 'seller', 'wallet')),
    ADD CONSTRAINT ck_api_keys_wallet CHECK ((role = 'wallet') = (wallet_id IS NOT NULL));

-- An event stream is a seller's (its id) or a wallet's ('wallet/<id>').
ALTER TABLE events DROP CONSTRAINT events_seller_id_fkey;
ALTER TABLE event_streams DROP CONSTRAINT event_streams_seller_id_fkey;
CREATE FUNCTION event_streams_owner() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER event_streams_owner BEFORE INSERT ON event_streams
    FOR EACH ROW EXECUTE FUNCTION event_streams_owner();
"""
    )
    op.execute(_event_type_checks(BASE_EVENT_TYPES + WALLET_EVENT_TYPES))


def downgrade() -> None:
    # Wallet keys and the wallets' events go with the wallets.
    op.execute(
        r"""
DELETE FROM api_keys WHERE role = 'wallet';
DELETE FROM webhook_delivery_attempts a USING webhook_deliveries d
 WHERE a.delivery_id = d.id AND d.seller_id LIKE 'wallet/%';
DELETE FROM webhook_deliveries WHERE seller_id LIKE 'wallet/%';
DELETE FROM events WHERE seller_id LIKE 'wallet/%';
DELETE FROM event_streams WHERE seller_id LIKE 'wallet/%';
-- An endpoint subscribed to wallet events only has nothing left to receive: deleted.
UPDATE webhook_endpoints
   SET deleted_at = coalesce(deleted_at, now()), event_types = '{balance.available_changed}'
 WHERE event_types <@ (SELECT array_agg(t) FROM unnest(event_types) t WHERE t LIKE 'wallet.%');
UPDATE webhook_endpoints
   SET event_types = (SELECT array_agg(t) FROM unnest(event_types) t WHERE t NOT LIKE 'wallet.%')
 WHERE EXISTS (SELECT 1 FROM unnest(event_types) t WHERE t LIKE 'wallet.%');
"""
    )
    op.execute(_event_type_checks(BASE_EVENT_TYPES))
    op.execute(
        r"""
DROP TRIGGER event_streams_owner ON event_streams;
DROP FUNCTION event_streams_owner();
ALTER TABLE event_streams ADD CONSTRAINT event_streams_seller_id_fkey
    FOREIGN KEY (seller_id) REFERENCES sellers (id);
ALTER TABLE events ADD CONSTRAINT events_seller_id_fkey
    FOREIGN KEY (seller_id) REFERENCES sellers (id);
ALTER TABLE api_keys
    DROP CONSTRAINT ck_api_keys_wallet,
    DROP CONSTRAINT ck_api_keys_role,
    ADD CONSTRAINT ck_api_keys_role CHECK (role IN ('admin', 'operator', 'seller')),
    DROP COLUMN wallet_id;
DROP TABLE wallet_transfers;
DROP TABLE wallet_refunds;
DROP TABLE wallet_spend_lots;
DROP TABLE wallet_spends;
DROP TABLE wallet_lots;
DROP TABLE wallets;
"""
    )
