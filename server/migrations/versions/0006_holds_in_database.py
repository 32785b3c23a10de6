"""Orders at ledger speed: earnings keyed by seller and order, the hold workflows' clocks, the
sellers' running totals, and set-based status changes in the ledger.

* **Earnings are keyed by (seller_id, order_id)**: an order that pays several sellers (a
  multi-seller cart) is one earning per seller. Refunds refer to the earning by both.
* **seller_hold_clocks**: what each seller's hold workflow sleeps on (``timer_at``), the earliest
  it looks again (``not_before``: the release window), and the earliest wake a booking asked for
  since (``wake_requested_at``, asked ``wake_requested_on``). A booking compares its hold's end
  with these in its own commit and notifies ``seller_holds`` only when the workflow must look
  earlier than it would; the worker's dispatcher turns the notification into a signal, and its
  sweep wakes every seller whose request went unanswered (a lost notification, Temporal down).
  Existing sellers with open holds get a clock asking for a wake at once, so the first sweep moves
  their workflows over.
* **seller_balances**: on hold, in reserve, in dispute and in transit per seller (and the counts
  of holds and reserves open), kept by statement-level triggers on earnings, disputes and payouts
  in the same database transaction as the change, like the ledger's running totals; a direct
  write is refused. Reading a seller's balances is O(1) whatever its history.
* **Set-based status changes**: the trigger that moves a transaction's amounts between the
  pending and posted totals runs once per statement (transition tables) instead of once per row,
  so posting hundreds of transactions in one UPDATE touches each account once, locking the
  accounts in id order as every writer does.

Revision ID: 0006_holds_in_database
Revises: 0005_webhooks
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_holds_in_database"
down_revision: str | None = "0005_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EARNINGS_BY_SELLER = """
ALTER TABLE refunds DROP CONSTRAINT refunds_order_id_fkey;
ALTER TABLE earnings DROP CONSTRAINT earnings_pkey;
ALTER TABLE earnings ADD CONSTRAINT pk_earnings PRIMARY KEY (seller_id, order_id);
DROP INDEX ix_earnings_seller_id;
ALTER TABLE refunds ADD CONSTRAINT fk_refunds_earning FOREIGN KEY (seller_id, order_id)
    REFERENCES earnings (seller_id, order_id);
DROP INDEX ix_refunds_order_id;
CREATE INDEX ix_refunds_earning ON refunds (seller_id, order_id);
CREATE INDEX ix_disputes_order ON disputes (seller_id, order_id);
-- Checked at commit: a booking writes its earning before its ledger transaction, so that the
-- hot platform accounts are locked last, for as short a time as possible (marketplace.booking).
ALTER TABLE earnings ALTER CONSTRAINT earnings_ledger_transaction_id_fkey
    DEFERRABLE INITIALLY DEFERRED;
-- A seller's holds in the order they end (the workflow's next due time, the holds list).
DROP INDEX ix_earnings_on_hold;
CREATE INDEX ix_earnings_on_hold ON earnings (seller_id, hold_until, order_id)
    WHERE status = 'on_hold';
DROP INDEX ix_earnings_reserve_open;
CREATE INDEX ix_earnings_reserve_open ON earnings (seller_id, reserve_release_at, order_id)
    WHERE reserve_transaction_id IS NOT NULL AND reserve_released_at IS NULL;
"""

CLOCKS = """
CREATE TABLE seller_hold_clocks (
    seller_id text PRIMARY KEY REFERENCES sellers (id),
    -- When the seller's hold workflow next looks (its timer); NULL: it waits for nothing.
    timer_at timestamptz,
    -- Its next turn comes no earlier than this (its last turn + the release window).
    not_before timestamptz,
    -- The earliest wake a booking asked for (and notified) since the workflow last looked, and
    -- when it asked. Cleared by the workflow's turn that covers it.
    wake_requested_at timestamptz,
    wake_requested_on timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_seller_hold_clocks_request
        CHECK ((wake_requested_at IS NULL) = (wake_requested_on IS NULL))
);
-- The dispatcher's sweep: requests left unanswered, timers that passed unobserved.
CREATE INDEX ix_seller_hold_clocks_requested ON seller_hold_clocks (wake_requested_on)
    WHERE wake_requested_on IS NOT NULL;
CREATE INDEX ix_seller_hold_clocks_timer ON seller_hold_clocks (timer_at);

-- Sellers with open holds today: their workflows keep their holds in memory; ask for a wake
-- now, which the first sweep answers (the workflow then moves over to reading the database).
INSERT INTO seller_hold_clocks (seller_id, wake_requested_at, wake_requested_on)
SELECT DISTINCT seller_id, now(), '-infinity'::timestamptz FROM earnings
 WHERE status = 'on_hold'
    OR (reserve_transaction_id IS NOT NULL AND reserve_released_at IS NULL);
"""

SELLER_BALANCES = r"""
CREATE TABLE seller_balances (
    seller_id text PRIMARY KEY REFERENCES sellers (id),
    on_hold bigint NOT NULL DEFAULT 0 CONSTRAINT ck_seller_balances_on_hold CHECK (on_hold >= 0),
    on_hold_count bigint NOT NULL DEFAULT 0
        CONSTRAINT ck_seller_balances_on_hold_count CHECK (on_hold_count >= 0),
    in_reserve bigint NOT NULL DEFAULT 0
        CONSTRAINT ck_seller_balances_in_reserve CHECK (in_reserve >= 0),
    in_reserve_count bigint NOT NULL DEFAULT 0
        CONSTRAINT ck_seller_balances_in_reserve_count CHECK (in_reserve_count >= 0),
    in_dispute bigint NOT NULL DEFAULT 0
        CONSTRAINT ck_seller_balances_in_dispute CHECK (in_dispute >= 0),
    in_transit bigint NOT NULL DEFAULT 0
        CONSTRAINT ck_seller_balances_in_transit CHECK (in_transit >= 0)
);

-- What one row contributes. An earning on hold holds its net less the seller's share of what was
-- refunded during the hold (floor(net * refunded / amount), marketplace.refunds); a reserve
-- counts from when it is held until it is released; a dispute while open; a payout from its
-- reservation until it is paid, failed or cancelled.
CREATE FUNCTION earning_on_hold(status text, net bigint, refunded bigint, amount bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status = 'on_hold' THEN net - div(net::numeric * refunded, amount)::bigint
                ELSE 0 END
$$;
CREATE FUNCTION earning_in_reserve(reserve_txn uuid, released timestamptz, reserve bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN reserve_txn IS NOT NULL AND released IS NULL THEN reserve ELSE 0 END
$$;

INSERT INTO seller_balances (seller_id) SELECT id FROM sellers;
UPDATE seller_balances b SET
    on_hold = s.on_hold, on_hold_count = s.on_hold_count,
    in_reserve = s.in_reserve, in_reserve_count = s.in_reserve_count
FROM (SELECT seller_id,
             sum(earning_on_hold(status, net, refunded_amount, amount)) AS on_hold,
             count(*) FILTER (WHERE status = 'on_hold') AS on_hold_count,
             sum(earning_in_reserve(reserve_transaction_id, reserve_released_at, reserve_amount))
                 AS in_reserve,
             count(*) FILTER (WHERE reserve_transaction_id IS NOT NULL
                                AND reserve_released_at IS NULL) AS in_reserve_count
        FROM earnings GROUP BY seller_id) s
WHERE b.seller_id = s.seller_id;
UPDATE seller_balances b SET in_dispute = s.total
FROM (SELECT seller_id, sum(amount) AS total FROM disputes WHERE status = 'open' GROUP BY seller_id) s
WHERE b.seller_id = s.seller_id;
UPDATE seller_balances b SET in_transit = s.total
FROM (SELECT seller_id, sum(amount) AS total FROM payouts
       WHERE status IN ('pending', 'processing') GROUP BY seller_id) s
WHERE b.seller_id = s.seller_id;

-- A new seller starts at zero.
CREATE FUNCTION seller_balances_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seller_balances (seller_id) SELECT id FROM new_rows ORDER BY id
        ON CONFLICT (seller_id) DO NOTHING;
    RETURN NULL;
END $$;

-- Only the triggers write seller_balances (they run at trigger depth >= 2 there).
CREATE FUNCTION seller_balances_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'seller balances are kept by the database from earnings, disputes and payouts'
            USING ERRCODE = 'LC002';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
"""


def _contributions(table: str) -> str:
    """The SELECT list of a row's contribution to seller_balances, for views over the
    transition tables."""
    if table == "earnings":
        return (
            "seller_id, earning_on_hold(status, net, refunded_amount, amount) AS on_hold, "
            "(status = 'on_hold')::int::bigint AS on_hold_count, "
            "earning_in_reserve(reserve_transaction_id, reserve_released_at, reserve_amount) "
            "AS in_reserve, "
            "(reserve_transaction_id IS NOT NULL AND reserve_released_at IS NULL)::int::bigint "
            "AS in_reserve_count, 0::bigint AS in_dispute, 0::bigint AS in_transit"
        )
    if table == "disputes":
        return (
            "seller_id, 0::bigint, 0::bigint, 0::bigint, 0::bigint, "
            "CASE WHEN status = 'open' THEN amount ELSE 0 END, 0::bigint"
        )
    return (
        "seller_id, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, "
        "CASE WHEN status IN ('pending', 'processing') THEN amount ELSE 0 END"
    )


def _apply_function(table: str) -> str:
    """One trigger function per table and event: the deltas of the transition tables."""
    columns = _contributions(table)
    out = []
    for event, new, old in (
        ("insert", f"SELECT {columns} FROM new_rows", None),
        ("update", f"SELECT {columns} FROM new_rows", f"SELECT {columns} FROM old_rows"),
    ):
        rows = f"SELECT 1 AS sign, * FROM ({new}) n"
        if old is not None:
            rows += f" UNION ALL SELECT -1, * FROM ({old}) o"
        out.append(
            f"""
CREATE FUNCTION seller_balances_{table}_{event}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- Per seller, in id order (v_: plpgsql variables, apart from the columns).
    v_sellers text[];
    v_holds bigint[]; v_hold_counts bigint[]; v_reserves bigint[]; v_reserve_counts bigint[];
    v_disputed bigint[]; v_transit bigint[];
BEGIN
    SELECT array_agg(seller_id ORDER BY seller_id), array_agg(on_hold ORDER BY seller_id),
           array_agg(on_hold_count ORDER BY seller_id), array_agg(in_reserve ORDER BY seller_id),
           array_agg(in_reserve_count ORDER BY seller_id),
           array_agg(in_dispute ORDER BY seller_id), array_agg(in_transit ORDER BY seller_id)
      INTO v_sellers, v_holds, v_hold_counts, v_reserves, v_reserve_counts, v_disputed,
           v_transit
      FROM (SELECT seller_id, sum(sign * on_hold) AS on_hold,
                   sum(sign * on_hold_count) AS on_hold_count,
                   sum(sign * in_reserve) AS in_reserve,
                   sum(sign * in_reserve_count) AS in_reserve_count,
                   sum(sign * in_dispute) AS in_dispute, sum(sign * in_transit) AS in_transit
              FROM ({rows}) x(sign, seller_id, on_hold, on_hold_count, in_reserve,
                             in_reserve_count, in_dispute, in_transit)
             GROUP BY seller_id) s
     WHERE (on_hold, on_hold_count, in_reserve, in_reserve_count, in_dispute, in_transit)
           <> (0, 0, 0, 0, 0, 0);
    IF v_sellers IS NULL THEN
        RETURN NULL;
    END IF;
    -- In seller order, so that statements touching several sellers cannot deadlock.
    PERFORM 1 FROM seller_balances WHERE seller_id = ANY (v_sellers) ORDER BY seller_id
        FOR NO KEY UPDATE;
    UPDATE seller_balances b SET
        on_hold = b.on_hold + d.h, on_hold_count = b.on_hold_count + d.hc,
        in_reserve = b.in_reserve + d.r, in_reserve_count = b.in_reserve_count + d.rc,
        in_dispute = b.in_dispute + d.dis, in_transit = b.in_transit + d.tr
      FROM unnest(v_sellers, v_holds, v_hold_counts, v_reserves, v_reserve_counts,
                  v_disputed, v_transit)
           AS d(seller_id, h, hc, r, rc, dis, tr)
     WHERE b.seller_id = d.seller_id;
    RETURN NULL;
END $$;
CREATE TRIGGER seller_balances_{event} AFTER {event.upper()} ON {table}
    REFERENCING {"OLD TABLE AS old_rows " if old is not None else ""}NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION seller_balances_{table}_{event}();
"""
        )
    return "".join(out)


SELLER_BALANCE_TRIGGERS = (
    """
CREATE TRIGGER seller_balances_open AFTER INSERT ON sellers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION seller_balances_open();
CREATE TRIGGER seller_balances_guard BEFORE INSERT OR UPDATE OR DELETE ON seller_balances
    FOR EACH ROW EXECUTE FUNCTION seller_balances_guard();
CREATE TRIGGER seller_balances_no_truncate BEFORE TRUNCATE ON seller_balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_immutable();
"""
    + _apply_function("earnings")
    + _apply_function("disputes")
    + _apply_function("payouts")
)

SET_BASED_STATUS = r"""
-- For set-based statements that must fail as a whole when one row is not as expected.
CREATE FUNCTION ledger_require(ok boolean, message text, state text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION '%', message USING ERRCODE = state;
    END IF;
END $$;

DROP TRIGGER ledger_transactions_status_apply ON ledger_transactions;
DROP FUNCTION ledger_transactions_status_apply();

-- A statement's status changes move their transactions' amounts between the pending and posted
-- totals (archived: out of the totals altogether): every account once, locked in id order first
-- (the order every writer locks in). lock_version grows by one per transaction and account, as
-- it did when this ran per row.
CREATE FUNCTION ledger_transactions_status_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- Per account, in id order (v_: plpgsql variables, apart from the columns).
    v_accounts uuid[];
    v_debits bigint[]; v_credits bigint[]; v_posted_debits bigint[]; v_posted_credits bigint[];
    v_versions bigint[];
BEGIN
    SELECT array_agg(account_id ORDER BY account_id), array_agg(d ORDER BY account_id),
           array_agg(c ORDER BY account_id), array_agg(pd ORDER BY account_id),
           array_agg(pc ORDER BY account_id), array_agg(n ORDER BY account_id)
      INTO v_accounts, v_debits, v_credits, v_posted_debits, v_posted_credits, v_versions
      FROM (SELECT e.account_id,
                   coalesce(sum(e.amount) FILTER (WHERE e.direction = 'debit'), 0) AS d,
                   coalesce(sum(e.amount) FILTER (WHERE e.direction = 'credit'), 0) AS c,
                   coalesce(sum(e.amount) FILTER (WHERE e.direction = 'debit'
                                                    AND m.status = 'posted'), 0) AS pd,
                   coalesce(sum(e.amount) FILTER (WHERE e.direction = 'credit'
                                                    AND m.status = 'posted'), 0) AS pc,
                   count(DISTINCT e.transaction_id) AS n
              FROM (SELECT nr.id, nr.status FROM new_rows nr JOIN old_rows o ON o.id = nr.id
                     WHERE nr.status IS DISTINCT FROM o.status) m
              JOIN ledger_entries e ON e.transaction_id = m.id
             GROUP BY e.account_id) s;
    IF v_accounts IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM ledger_accounts WHERE id = ANY (v_accounts) ORDER BY id FOR NO KEY UPDATE;
    UPDATE ledger_accounts a
       SET pending_debits = a.pending_debits - x.d,
           pending_credits = a.pending_credits - x.c,
           posted_debits = a.posted_debits + x.pd,
           posted_credits = a.posted_credits + x.pc,
           lock_version = a.lock_version + x.versions,
           updated_at = now()
      FROM unnest(v_accounts, v_debits, v_credits, v_posted_debits, v_posted_credits, v_versions)
           AS x(account_id, d, c, pd, pc, versions)
     WHERE a.id = x.account_id;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_transactions_status_apply AFTER UPDATE ON ledger_transactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transactions_status_apply();
"""

ROW_STATUS = r"""
DROP TRIGGER ledger_transactions_status_apply ON ledger_transactions;
DROP FUNCTION ledger_transactions_status_apply();
CREATE FUNCTION ledger_transactions_status_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    to_posted integer := CASE WHEN NEW.status = 'posted' THEN 1 ELSE 0 END;
BEGIN
    FOR r IN
        SELECT e.account_id,
               coalesce(sum(e.amount) FILTER (WHERE e.direction = 'debit'), 0) AS d,
               coalesce(sum(e.amount) FILTER (WHERE e.direction = 'credit'), 0) AS c
        FROM ledger_entries e
        WHERE e.transaction_id = NEW.id
        GROUP BY e.account_id
        ORDER BY e.account_id
    LOOP
        UPDATE ledger_accounts
           SET pending_debits = pending_debits - r.d,
               pending_credits = pending_credits - r.c,
               posted_debits = posted_debits + r.d * to_posted,
               posted_credits = posted_credits + r.c * to_posted,
               lock_version = lock_version + 1,
               updated_at = now()
         WHERE id = r.account_id;
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_transactions_status_apply AFTER UPDATE OF status ON ledger_transactions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ledger_transactions_status_apply();
"""


# The set-based writes that commits carry (ledger_core.deferred) as functions: PL/pgSQL keeps
# their plans for the session, so a booking's statements are not planned again on every call.
# Each takes JSON arrays of rows; the callers (ledger_core.ledger, marketplace.booking,
# marketplace.events, marketplace.holds) document what the rows hold.
SET_BASED_FUNCTIONS = r"""
-- New transactions and their entries, new or fail (an external_id that exists: unique
-- violation). Entries go in in account-id order across the set, so writers never deadlock.
CREATE FUNCTION ledger_insert_transactions(p_txns jsonb, p_entries jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH txn AS (
        INSERT INTO ledger_transactions (
            id, ledger_id, status, effective_at, external_id, description, metadata,
            total_amount, request_hash, created_at, updated_at, posted_at)
        SELECT x.id, x.ledger_id, x.status, x.effective_at, x.external_id, x.description,
               x.metadata, x.total_amount, x.request_hash, x.created_at, x.created_at,
               x.posted_at
          FROM jsonb_to_recordset(p_txns) AS x(
               id uuid, ledger_id uuid, status text, effective_at timestamptz,
               external_id text, description text, metadata jsonb, total_amount bigint,
               request_hash text, created_at timestamptz, posted_at timestamptz)
        RETURNING id, ledger_id, created_at
    )
    INSERT INTO ledger_entries (id, transaction_id, ledger_id, account_id, direction, amount,
                                ordinal, created_at)
    SELECT e.id, txn.id, txn.ledger_id, e.account_id, e.direction, e.amount, e.ordinal,
           txn.created_at
      FROM txn JOIN jsonb_to_recordset(p_entries) AS e(
           id uuid, transaction_id uuid, account_id uuid, direction text, amount bigint,
           ordinal smallint) ON e.transaction_id = txn.id
     ORDER BY e.account_id, e.transaction_id;
END $$;

-- New earnings on hold, new or fail: a concurrent booking of the same seller and order fails.
CREATE FUNCTION marketplace_insert_earnings(p_rows jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO earnings (order_id, seller_id, currency, amount, fee, net,
                          ledger_transaction_id, status, hold_until, reserve_percent_bp,
                          reserve_period_seconds, reserve_amount, metadata, created_at,
                          updated_at, refunded_amount)
    SELECT x.order_id, x.seller_id, x.currency, x.amount, x.fee, x.net,
           x.ledger_transaction_id, 'on_hold', x.hold_until, x.reserve_percent_bp,
           x.reserve_period_seconds, x.reserve_amount, x.metadata, x.created_at, x.created_at, 0
      FROM jsonb_to_recordset(p_rows) AS x(
           order_id text, seller_id text, currency text, amount bigint, fee bigint, net bigint,
           ledger_transaction_id uuid, hold_until timestamptz, reserve_percent_bp int,
           reserve_period_seconds bigint, reserve_amount bigint, metadata jsonb,
           created_at timestamptz)
     ORDER BY x.seller_id, x.order_id;
END $$;

-- Events of several sellers: each seller's stream moves on by its number of events (the row
-- lock orders a seller's events: sequence order is commit order), the events get consecutive
-- sequences in input order ("ord"), every subscribed endpoint one pending delivery, and each
-- delivery stream one notification at commit. "available" (balance events) is remembered as
-- the last available balance reported.
CREATE FUNCTION marketplace_record_events(p_events jsonb, p_now timestamptz) RETURNS void
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
        RETURNING s.seller_id, s.last_sequence
    ), ev AS (
        INSERT INTO events (id, seller_id, sequence, type, data, created_at)
        SELECT i.id, i.seller_id,
               st.last_sequence - c.n
                   + row_number() OVER (PARTITION BY i.seller_id ORDER BY i.ord),
               i.type, i.data, p_now
          FROM input i JOIN stream st ON st.seller_id = i.seller_id
          JOIN counts c ON c.seller_id = i.seller_id
         ORDER BY i.ord
        RETURNING events.id, events.seller_id, events.sequence, events.type
    ), fan AS (
        INSERT INTO webhook_deliveries
            (id, event_id, endpoint_id, seller_id, sequence, status, created_at, updated_at)
        SELECT 'whd_' || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint),
                              12, '0')
                      || substr(md5(random()::text || w.id || ev.id), 1, 20),
               ev.id, w.id, ev.seller_id, ev.sequence, 'pending', p_now, p_now
          FROM ev CROSS JOIN webhook_endpoints w
         WHERE w.deleted_at IS NULL
           AND (ev.type = ANY (w.event_types) OR '*' = ANY (w.event_types))
        RETURNING webhook_deliveries.endpoint_id, webhook_deliveries.seller_id
    )
    SELECT count(pg_notify('webhook_deliveries', f.endpoint_id || ' ' || f.seller_id))
      INTO v_notified
      FROM (SELECT DISTINCT fan.endpoint_id, fan.seller_id FROM fan) f;
END $$;

-- Bookings' hold ends ("due", the earliest per seller of one commit): ask for a wake where the
-- seller's hold workflow would look later than max(due, not_before), and notify those sellers.
-- The upsert locks each clock row either way, so it is ordered with the workflow's turn that
-- rewrites the clock.
CREATE FUNCTION marketplace_request_wakes(p_rows jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_notified bigint;
BEGIN
    WITH woken AS (
        INSERT INTO seller_hold_clocks AS c
            (seller_id, wake_requested_at, wake_requested_on, updated_at)
        SELECT x.seller_id, x.due, now(), now()
          FROM jsonb_to_recordset(p_rows) AS x(seller_id text, due timestamptz)
         ORDER BY x.seller_id
        ON CONFLICT (seller_id) DO UPDATE
            SET wake_requested_at = greatest(EXCLUDED.wake_requested_at, c.not_before),
                wake_requested_on = now()
            WHERE greatest(EXCLUDED.wake_requested_at, coalesce(c.not_before, '-infinity'))
                  < least(coalesce(c.timer_at, 'infinity'),
                          coalesce(c.wake_requested_at, 'infinity'))
        RETURNING c.seller_id
    )
    SELECT count(pg_notify('seller_holds', w.seller_id)) INTO v_notified FROM woken w;
END $$;
"""


def upgrade() -> None:
    op.execute(EARNINGS_BY_SELLER)
    op.execute(CLOCKS)
    op.execute(SELLER_BALANCES)
    op.execute(SELLER_BALANCE_TRIGGERS)
    op.execute(SET_BASED_STATUS)
    op.execute(SET_BASED_FUNCTIONS)


def downgrade() -> None:
    for fn in (
        "ledger_insert_transactions(jsonb, jsonb)",
        "marketplace_insert_earnings(jsonb)",
        "marketplace_record_events(jsonb, timestamptz)",
        "marketplace_request_wakes(jsonb)",
    ):
        op.execute(f"DROP FUNCTION {fn}")
    op.execute(ROW_STATUS)
    op.execute("DROP FUNCTION ledger_require(boolean, text, text)")
    for table in ("earnings", "disputes", "payouts"):
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER seller_balances_{event} ON {table}")
            op.execute(f"DROP FUNCTION seller_balances_{table}_{event}()")
    op.execute(
        """
DROP TRIGGER seller_balances_open ON sellers;
DROP TABLE seller_balances;
DROP FUNCTION seller_balances_open();
DROP FUNCTION seller_balances_guard();
DROP FUNCTION earning_on_hold(text, bigint, bigint, bigint);
DROP FUNCTION earning_in_reserve(uuid, timestamptz, bigint);
DROP TABLE seller_hold_clocks;
DROP INDEX ix_disputes_order;
ALTER TABLE earnings ALTER CONSTRAINT earnings_ledger_transaction_id_fkey NOT DEFERRABLE;
DROP INDEX ix_refunds_earning;
DROP INDEX ix_earnings_on_hold;
CREATE INDEX ix_earnings_on_hold ON earnings (seller_id, hold_until) WHERE status = 'on_hold';
DROP INDEX ix_earnings_reserve_open;
CREATE INDEX ix_earnings_reserve_open ON earnings (seller_id, reserve_release_at)
    WHERE reserve_transaction_id IS NOT NULL AND reserve_released_at IS NULL;
ALTER TABLE refunds DROP CONSTRAINT fk_refunds_earning;
ALTER TABLE earnings DROP CONSTRAINT pk_earnings;
ALTER TABLE earnings ADD CONSTRAINT earnings_pkey PRIMARY KEY (order_id);
CREATE INDEX ix_earnings_seller_id ON earnings (seller_id, order_id);
CREATE INDEX ix_refunds_order_id ON refunds (order_id);
ALTER TABLE refunds ADD CONSTRAINT refunds_order_id_fkey FOREIGN KEY (order_id)
    REFERENCES earnings (order_id);
"""
    )
