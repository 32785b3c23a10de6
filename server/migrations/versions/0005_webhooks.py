"""Events and webhooks to subscribers: a transactional outbox.

Every state change a subscriber may care about (an earning booked, posted, refunded; a dispute
opened, won, lost; a payout created, paid, failed, returned; a seller's available balance
changed) writes an ``events`` row in the same database transaction as the change itself, so an
event exists exactly when its change committed. The event is numbered per seller
(``event_streams``: the seller's last sequence and the last available balance it reported), and
fanned out in that transaction to one ``webhook_deliveries`` row per subscribed endpoint, with a
``pg_notify('webhook_deliveries', '<endpoint> <seller>')`` that the worker's dispatcher turns into
a delivery workflow (``webhook-delivery/<endpoint>/<seller>``), which posts them in sequence.

Revision ID: 0005_webhooks
Revises: 0004_payouts
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_webhooks"
down_revision: str | None = "0004_payouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_TYPES = (
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


def upgrade() -> None:
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    op.execute(
        rf"""
-- Per seller: the last event sequence number and the last available balance reported. The row
-- lock also orders a seller's events: sequence order is commit order.
CREATE TABLE event_streams (
    seller_id text PRIMARY KEY REFERENCES sellers (id),
    last_sequence bigint NOT NULL DEFAULT 0 CONSTRAINT ck_event_streams_last_sequence
        CHECK (last_sequence >= 0),
    last_available bigint
);

CREATE TABLE events (
    id text PRIMARY KEY CONSTRAINT ck_events_id CHECK (id ~ '^evt_[0-9a-f]{{32}}$'),
    -- Global order, for listing with a cursor.
    position bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT uq_events_position UNIQUE,
    seller_id text NOT NULL REFERENCES sellers (id),
    sequence bigint NOT NULL CONSTRAINT ck_events_sequence CHECK (sequence > 0),
    type text NOT NULL CONSTRAINT ck_events_type CHECK (type IN ({types})),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_events_seller_sequence UNIQUE (seller_id, sequence)
);
CREATE INDEX ix_events_type_position ON events (type, position);
CREATE INDEX ix_events_seller_position ON events (seller_id, position);

CREATE TABLE webhook_endpoints (
    id text PRIMARY KEY CONSTRAINT ck_webhook_endpoints_id CHECK (id ~ '^we_[0-9a-f]{{24}}$'),
    url text NOT NULL CONSTRAINT ck_webhook_endpoints_url
        CHECK (url ~ '^https?://[^\s]+$' AND length(url) <= 2048),
    description text NOT NULL DEFAULT ''
        CONSTRAINT ck_webhook_endpoints_description CHECK (length(description) <= 1000),
    -- Event types, or '*' for all of them.
    event_types text[] NOT NULL CONSTRAINT ck_webhook_endpoints_event_types
        CHECK (cardinality(event_types) > 0 AND event_types <@ ARRAY[{types}, '*']::text[]),
    -- Signs every delivery (HMAC-SHA256); shown once when the endpoint is created.
    secret text NOT NULL CONSTRAINT ck_webhook_endpoints_secret CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Deleted endpoints keep their deliveries (history) but get no new ones.
    deleted_at timestamptz
);

CREATE TABLE webhook_deliveries (
    id text PRIMARY KEY CONSTRAINT ck_webhook_deliveries_id CHECK (id ~ '^whd_[0-9a-f]{{32}}$'),
    event_id text NOT NULL REFERENCES events (id),
    endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
    seller_id text NOT NULL,
    sequence bigint NOT NULL,
    status text NOT NULL CONSTRAINT ck_webhook_deliveries_status
        CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0 CONSTRAINT ck_webhook_deliveries_attempts
        CHECK (attempts >= 0),
    last_attempt_at timestamptz,
    last_response_status integer,
    last_error text,
    succeeded_at timestamptz,
    failed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_webhook_deliveries_event_endpoint UNIQUE (event_id, endpoint_id)
);
-- What a delivery workflow sends next, in sequence.
CREATE INDEX ix_webhook_deliveries_pending ON webhook_deliveries (endpoint_id, seller_id, sequence)
    WHERE status = 'pending';
CREATE INDEX ix_webhook_deliveries_endpoint_status ON webhook_deliveries (endpoint_id, status, id);
CREATE INDEX ix_webhook_deliveries_event ON webhook_deliveries (event_id);

-- Every attempt, for the operator who wants to know why an endpoint fails.
CREATE TABLE webhook_delivery_attempts (
    delivery_id text NOT NULL REFERENCES webhook_deliveries (id),
    attempt integer NOT NULL CONSTRAINT ck_webhook_delivery_attempts_attempt CHECK (attempt > 0),
    attempted_at timestamptz NOT NULL,
    response_status integer,
    error text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
"""
    )


def downgrade() -> None:
    op.execute(
        """
DROP TABLE webhook_delivery_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE events;
DROP TABLE event_streams;
"""
    )
