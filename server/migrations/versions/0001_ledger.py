"""Ledger core: ledgers, accounts, transactions, entries, and the invariants PostgreSQL enforces.

The database is the backstop for every rule the Python code also checks, so that a writer that
bypasses ledger_core (raw SQL, a bug, a future service) still cannot break the ledger:

* amounts are positive integers (BIGINT minor units) and every transaction balances: a deferred
  constraint trigger checks, at commit, that debits = credits = the transaction's total_amount,
  with at least two entries; entries are written only in the database transaction that writes
  their ledger transaction, so a committed transaction never gains entries;
* entries never change and are never deleted;
* a transaction only moves pending -> posted or pending -> archived; posted and archived
  transactions change nothing but metadata (and the link to their reversal, once);
* running totals on each account are written only by triggers on entry insert and status change
  (ledger_core writes entries in account-id order, and the status trigger walks accounts in id
  order, so concurrent writers cannot deadlock on them); a direct UPDATE of a total is rejected,
  so the totals always equal the entries they summarise.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001_ledger"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLES = """
CREATE TABLE ledgers (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    description text,
    currency text NOT NULL CONSTRAINT ck_ledgers_currency CHECK (currency ~ '^[A-Z]{3}$'),
    currency_exponent smallint NOT NULL
        CONSTRAINT ck_ledgers_currency_exponent CHECK (currency_exponent BETWEEN 0 AND 18),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_ledgers_id_currency UNIQUE (id, currency)
);

CREATE TABLE ledger_accounts (
    id uuid PRIMARY KEY,
    ledger_id uuid NOT NULL,
    name text NOT NULL,
    description text,
    normal_balance text NOT NULL
        CONSTRAINT ck_ledger_accounts_normal_balance CHECK (normal_balance IN ('credit', 'debit')),
    currency text NOT NULL,
    external_id text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    pending_debits bigint NOT NULL DEFAULT 0 CONSTRAINT ck_ledger_accounts_pending_debits CHECK (pending_debits >= 0),
    pending_credits bigint NOT NULL DEFAULT 0 CONSTRAINT ck_ledger_accounts_pending_credits CHECK (pending_credits >= 0),
    posted_debits bigint NOT NULL DEFAULT 0 CONSTRAINT ck_ledger_accounts_posted_debits CHECK (posted_debits >= 0),
    posted_credits bigint NOT NULL DEFAULT 0 CONSTRAINT ck_ledger_accounts_posted_credits CHECK (posted_credits >= 0),
    lock_version bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk_ledger_accounts_ledger FOREIGN KEY (ledger_id, currency)
        REFERENCES ledgers (id, currency),
    CONSTRAINT uq_ledger_accounts_external_id UNIQUE (ledger_id, external_id)
);

CREATE TABLE ledger_transactions (
    id uuid PRIMARY KEY,
    ledger_id uuid NOT NULL,
    status text NOT NULL
        CONSTRAINT ck_ledger_transactions_status CHECK (status IN ('pending', 'posted', 'archived')),
    effective_at timestamptz NOT NULL,
    external_id text,
    description text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    total_amount bigint NOT NULL CONSTRAINT ck_ledger_transactions_total_amount CHECK (total_amount > 0),
    request_hash text,
    reverses_id uuid REFERENCES ledger_transactions (id),
    reversed_by_id uuid REFERENCES ledger_transactions (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    posted_at timestamptz,
    archived_at timestamptz,
    -- The database transaction that wrote this row: entries are accepted only from it.
    created_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT uq_ledger_transactions_external_id UNIQUE (ledger_id, external_id),
    CONSTRAINT uq_ledger_transactions_reverses UNIQUE (reverses_id)
);
CREATE INDEX ix_ledger_transactions_ledger_id ON ledger_transactions (ledger_id, id);
CREATE INDEX ix_ledger_transactions_effective_at ON ledger_transactions (ledger_id, effective_at);

CREATE TABLE ledger_entries (
    id uuid PRIMARY KEY,
    transaction_id uuid NOT NULL,
    ledger_id uuid NOT NULL,
    account_id uuid NOT NULL,
    direction text NOT NULL
        CONSTRAINT ck_ledger_entries_direction CHECK (direction IN ('debit', 'credit')),
    amount bigint NOT NULL CONSTRAINT ck_ledger_entries_amount CHECK (amount > 0),
    ordinal smallint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
    -- References to the transaction and the account (both in the entry's ledger) are checked by
    -- ledger_entries_apply, which reads and locks those rows anyway; a foreign key would also
    -- take KEY SHARE locks on the hottest rows (a clearing account, the ledger), which pile up
    -- as multixacts. Nothing that an entry refers to can be deleted (see the guards).
);
CREATE INDEX ix_ledger_entries_transaction_id ON ledger_entries (transaction_id);
CREATE INDEX ix_ledger_entries_account_id ON ledger_entries (account_id, id);
"""

FUNCTIONS = r"""
-- Entries never change, and nothing the ledger records is ever deleted: corrections are
-- reversals.
CREATE FUNCTION ledger_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of % refused: the ledger''s records are immutable', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'LC002', HINT = 'correct a posted transaction with a reversal';
END $$;

-- Running totals follow inserted entries, one account row per entry, updated as the entry is
-- written (ledger_core inserts a transaction's entries in account-id order, so concurrent writers
-- lock accounts in one global order and cannot deadlock). An entry can only be written in the
-- same database transaction as its ledger transaction, so a committed transaction never gains
-- entries. lock_version grows by one per entry, i.e. with every change to the balances.
CREATE FUNCTION ledger_entries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t_status text;
    t_ledger uuid;
    t_open boolean;
BEGIN
    -- One statement on the hot path: the account moves only if the transaction exists in the
    -- entry's ledger, was written by this very database transaction (pg_current_xact_id() is
    -- the top-level id, savepoints included) and is not archived.
    UPDATE ledger_accounts a
       SET pending_debits = a.pending_debits
               + CASE WHEN t.status = 'pending' AND NEW.direction = 'debit' THEN NEW.amount ELSE 0 END,
           pending_credits = a.pending_credits
               + CASE WHEN t.status = 'pending' AND NEW.direction = 'credit' THEN NEW.amount ELSE 0 END,
           posted_debits = a.posted_debits
               + CASE WHEN t.status = 'posted' AND NEW.direction = 'debit' THEN NEW.amount ELSE 0 END,
           posted_credits = a.posted_credits
               + CASE WHEN t.status = 'posted' AND NEW.direction = 'credit' THEN NEW.amount ELSE 0 END,
           lock_version = a.lock_version + 1
      FROM ledger_transactions t
     WHERE t.id = NEW.transaction_id
       AND t.ledger_id = NEW.ledger_id
       AND t.created_xid = pg_current_xact_id()
       AND t.status <> 'archived'
       AND a.id = NEW.account_id
       AND a.ledger_id = NEW.ledger_id;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    -- Refused: say why.
    SELECT status, ledger_id, created_xid = pg_current_xact_id()
      INTO t_status, t_ledger, t_open
      FROM ledger_transactions WHERE id = NEW.transaction_id;
    IF t_status IS NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not exist', NEW.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF t_ledger <> NEW.ledger_id THEN
        RAISE EXCEPTION 'entry and transaction % are in different ledgers', NEW.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF t_open IS NOT TRUE THEN
        RAISE EXCEPTION 'entries are written together with their ledger transaction, never later'
            USING ERRCODE = 'LC002';
    END IF;
    IF t_status = 'archived' THEN
        RAISE EXCEPTION 'entries cannot be added to an archived transaction' USING ERRCODE = 'LC003';
    END IF;
    RAISE EXCEPTION 'ledger account % does not exist in ledger %', NEW.account_id, NEW.ledger_id
        USING ERRCODE = 'foreign_key_violation',
              DETAIL = jsonb_build_object('account_id', NEW.account_id)::text;
END $$;

-- A status change moves the transaction's amounts between the pending and posted totals
-- (archived: out of the totals altogether), again per account in id order.
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

-- Only pending -> posted and pending -> archived; posted and archived transactions change
-- nothing but metadata, and a posted one may be linked to its reversal once.
CREATE FUNCTION ledger_transactions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ledger transactions are never deleted' USING ERRCODE = 'LC002';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NOT (OLD.status = 'pending' AND NEW.status IN ('posted', 'archived')) THEN
        RAISE EXCEPTION 'invalid status transition % -> %', OLD.status, NEW.status
            USING ERRCODE = 'LC004';
    END IF;
    IF NEW.ledger_id IS DISTINCT FROM OLD.ledger_id
       OR NEW.effective_at IS DISTINCT FROM OLD.effective_at
       OR NEW.external_id IS DISTINCT FROM OLD.external_id
       OR NEW.description IS DISTINCT FROM OLD.description
       OR NEW.total_amount IS DISTINCT FROM OLD.total_amount
       OR NEW.request_hash IS DISTINCT FROM OLD.request_hash
       OR NEW.reverses_id IS DISTINCT FROM OLD.reverses_id
       OR NEW.created_xid IS DISTINCT FROM OLD.created_xid
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'only status and metadata of a ledger transaction can change'
            USING ERRCODE = 'LC002';
    END IF;
    IF NEW.reversed_by_id IS DISTINCT FROM OLD.reversed_by_id
       AND NOT (OLD.reversed_by_id IS NULL AND NEW.status = 'posted') THEN
        RAISE EXCEPTION 'a posted transaction is reversed at most once' USING ERRCODE = 'LC002';
    END IF;
    -- ... and only by a transaction that reverses it (else it could never be reversed).
    IF NEW.reversed_by_id IS DISTINCT FROM OLD.reversed_by_id AND NOT EXISTS (
           SELECT 1 FROM ledger_transactions r
            WHERE r.id = NEW.reversed_by_id AND r.reverses_id = OLD.id) THEN
        RAISE EXCEPTION 'transaction % does not reverse %', NEW.reversed_by_id, OLD.id
            USING ERRCODE = 'LC002';
    END IF;
    RETURN NEW;
END $$;

-- Running totals are written by the triggers above only (they run at trigger depth >= 2).
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.pending_debits <> 0 OR NEW.pending_credits <> 0 OR NEW.posted_debits <> 0
           OR NEW.posted_credits <> 0 OR NEW.lock_version <> 0 THEN
            RAISE EXCEPTION 'a new account starts with zero balances; entries move them'
                USING ERRCODE = 'LC002';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.lock_version <> 0 THEN
            RAISE EXCEPTION 'an account with entries is never deleted' USING ERRCODE = 'LC002';
        END IF;
        RETURN OLD;
    END IF;
    IF pg_trigger_depth() < 2 AND (
           NEW.pending_debits IS DISTINCT FROM OLD.pending_debits
        OR NEW.pending_credits IS DISTINCT FROM OLD.pending_credits
        OR NEW.posted_debits IS DISTINCT FROM OLD.posted_debits
        OR NEW.posted_credits IS DISTINCT FROM OLD.posted_credits
        OR NEW.lock_version IS DISTINCT FROM OLD.lock_version) THEN
        RAISE EXCEPTION 'account balances are maintained by the ledger from its entries'
            USING ERRCODE = 'LC002';
    END IF;
    IF NEW.ledger_id IS DISTINCT FROM OLD.ledger_id
       OR NEW.normal_balance IS DISTINCT FROM OLD.normal_balance
       OR NEW.currency IS DISTINCT FROM OLD.currency THEN
        RAISE EXCEPTION 'an account''s ledger, currency and normal balance never change'
            USING ERRCODE = 'LC002';
    END IF;
    RETURN NEW;
END $$;

-- Deferred to commit: the transaction has >= 2 entries and debits = credits = total_amount.
-- (total_amount never changes and entries are only written with their transaction.)
CREATE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    debits numeric;
    credits numeric;
BEGIN
    SELECT count(*),
           coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0),
           coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0)
      INTO n, debits, credits
      FROM ledger_entries WHERE transaction_id = NEW.id;
    IF n < 2 OR debits <> credits OR debits <> NEW.total_amount THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: % entries, debits %, credits %, total %',
            NEW.id, n, debits, credits, NEW.total_amount
            USING ERRCODE = 'LC005';
    END IF;
    RETURN NULL;
END $$;

-- Balance conditions, checked against the balances the current database transaction leaves.
-- p_conditions: [{"account_id", "balance": available|pending|posted, "op": gte|gt|lte|lt|eq,
-- "amount"} | {"account_id", "lock_version"}]. A failure raises LC001 with a JSON detail,
-- which aborts the whole database transaction: a failed condition can never be committed.
CREATE FUNCTION ledger_check_conditions(p_transaction_id uuid, p_conditions jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb;
    a ledger_accounts%ROWTYPE;
    credit_normal boolean;
    bal bigint;
    bound bigint;
    ok boolean;
    before_version bigint;
BEGIN
    FOR c IN SELECT value FROM jsonb_array_elements(p_conditions) LOOP
        SELECT * INTO a FROM ledger_accounts WHERE id = (c->>'account_id')::uuid;
        credit_normal := a.normal_balance = 'credit';
        IF c ? 'lock_version' THEN
            -- Each entry of this write bumped the version once.
            SELECT a.lock_version - count(*) INTO before_version FROM ledger_entries
             WHERE transaction_id = p_transaction_id AND account_id = a.id;
            IF before_version <> (c->>'lock_version')::bigint THEN
                RAISE EXCEPTION 'lock_version of account % is %, expected %',
                    a.id, before_version, c->>'lock_version'
                    USING ERRCODE = 'LC001',
                          DETAIL = jsonb_build_object('account_id', a.id, 'condition', 'lock_version',
                                   'expected', (c->>'lock_version')::bigint,
                                   'actual', before_version)::text;
            END IF;
            CONTINUE;
        END IF;
        bal := CASE c->>'balance'
            WHEN 'posted' THEN
                CASE WHEN credit_normal THEN a.posted_credits - a.posted_debits
                     ELSE a.posted_debits - a.posted_credits END
            WHEN 'pending' THEN
                CASE WHEN credit_normal
                     THEN (a.pending_credits + a.posted_credits) - (a.pending_debits + a.posted_debits)
                     ELSE (a.pending_debits + a.posted_debits) - (a.pending_credits + a.posted_credits) END
            WHEN 'available' THEN
                CASE WHEN credit_normal THEN a.posted_credits - (a.pending_debits + a.posted_debits)
                     ELSE a.posted_debits - (a.pending_credits + a.posted_credits) END
        END;
        bound := (c->>'amount')::bigint;
        ok := CASE c->>'op'
            WHEN 'gte' THEN bal >= bound
            WHEN 'gt' THEN bal > bound
            WHEN 'lte' THEN bal <= bound
            WHEN 'lt' THEN bal < bound
            WHEN 'eq' THEN bal = bound
        END;
        IF ok IS NOT TRUE THEN
            RAISE EXCEPTION 'resulting % balance of account % would be %, required % %',
                c->>'balance', a.id, bal, c->>'op', bound
                USING ERRCODE = 'LC001',
                      DETAIL = jsonb_build_object('account_id', a.id, 'condition', c->>'balance',
                               'op', c->>'op', 'amount', bound, 'actual', bal)::text;
        END IF;
    END LOOP;
END $$;
"""

TRIGGERS = """
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_immutable();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_immutable();
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_apply();

CREATE TRIGGER ledger_transactions_guard BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_transactions_guard();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_immutable();
CREATE TRIGGER ledger_transactions_status_apply AFTER UPDATE OF status ON ledger_transactions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ledger_transactions_status_apply();
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_transactions_balanced();

CREATE TRIGGER ledger_accounts_guard BEFORE INSERT OR UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_immutable();
CREATE TRIGGER ledgers_no_delete BEFORE DELETE OR TRUNCATE ON ledgers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_immutable();
CREATE TRIGGER ledgers_guard BEFORE UPDATE ON ledgers
    FOR EACH ROW WHEN (NEW.currency IS DISTINCT FROM OLD.currency
                       OR NEW.currency_exponent IS DISTINCT FROM OLD.currency_exponent)
    EXECUTE FUNCTION ledger_entries_immutable();
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTIONS)
    op.execute(TRIGGERS)


def downgrade() -> None:
    for table in ("ledger_entries", "ledger_transactions", "ledger_accounts", "ledgers"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for fn in (
        "ledger_entries_immutable()",
        "ledger_entries_apply()",
        "ledger_transactions_status_apply()",
        "ledger_transactions_guard()",
        "ledger_accounts_guard()",
        "ledger_transactions_balanced()",
        "ledger_check_conditions(uuid, jsonb)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
