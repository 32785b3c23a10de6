"""PostgreSQL itself enforces the ledger's invariants: raw SQL that bypasses ledger_core is
rejected (deferred checks fire at commit, so every test commits), while legitimate raw writes
(metadata, a balanced insert, posting a pending transaction) still work."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from ledger_core import LedgerAccount, LedgerTransaction, NormalBalance
from tests.ledger_core.conftest import PENDING, Book, Snapshot, credit, debit, snapshot, triple

IMMUTABLE = "LC002"
ARCHIVED_TXN = "LC003"
INVALID_TRANSITION = "LC004"
UNBALANCED = "LC005"
CHECK_VIOLATION = "23514"
FOREIGN_KEY_VIOLATION = "23503"


@dataclass
class World:
    book: Book
    foreign: Book
    seller: LedgerAccount
    cash: LedgerAccount
    far: LedgerAccount
    posted: LedgerTransaction
    pending: LedgerTransaction
    archived: LedgerTransaction

    @property
    def engine(self) -> Engine:
        return self.book.engine

    def state(self) -> tuple[Snapshot, Snapshot]:
        return (self.book.snapshot(), snapshot(self.engine, self.foreign.id))


@pytest.fixture
def world(make_book: Any) -> World:
    book, foreign = make_book(), make_book()
    seller = book.account(NormalBalance.CREDIT)
    cash = book.account(NormalBalance.DEBIT)
    far = foreign.account(NormalBalance.CREDIT)
    foreign.write(debit(foreign.account(NormalBalance.DEBIT), 1), credit(far, 1))
    posted = book.write(debit(cash, 100), credit(seller, 100))
    pending = book.write(debit(cash, 20), credit(seller, 20), status=PENDING)
    archived = book.archive(book.write(debit(cash, 30), credit(seller, 30), status=PENDING))
    return World(book, foreign, seller, cash, far, posted, pending, archived)


def insert_transaction(
    conn: Connection,
    ledger_id: uuid.UUID,
    total: int,
    entries: list[tuple[uuid.UUID, str, int]],
    *,
    status: str = "posted",
    entry_ledger_id: uuid.UUID | None = None,
) -> uuid.UUID:
    txn_id = uuid.uuid4()
    conn.execute(
        text(
            "INSERT INTO ledger_transactions (id, ledger_id, status, effective_at, total_amount)"
            " VALUES (:id, :ledger, :status, now(), :total)"
        ),
        {"id": txn_id, "ledger": ledger_id, "status": status, "total": total},
    )
    insert_entries(conn, txn_id, entry_ledger_id or ledger_id, entries)
    return txn_id


def insert_entries(
    conn: Connection,
    txn_id: uuid.UUID,
    ledger_id: uuid.UUID,
    entries: list[tuple[uuid.UUID, str, int]],
) -> None:
    for i, (account_id, direction, amount) in enumerate(entries):
        conn.execute(
            text(
                "INSERT INTO ledger_entries"
                " (id, transaction_id, ledger_id, account_id, direction, amount, ordinal)"
                " VALUES (gen_random_uuid(), :txn, :ledger, :account, :direction, :amount, :i)"
            ),
            {
                "txn": txn_id,
                "ledger": ledger_id,
                "account": account_id,
                "direction": direction,
                "amount": amount,
                "i": 100 + i,
            },
        )


def expect_rejected(world: World, sqlstates: str | set[str], write: Any) -> None:
    """Run raw SQL in a committed transaction: it must fail with one of the given SQLSTATEs and
    leave both ledgers exactly as they were."""
    before = world.state()
    with pytest.raises(DBAPIError) as err, world.engine.begin() as conn:
        write(conn)
    wanted = {sqlstates} if isinstance(sqlstates, str) else sqlstates
    assert getattr(err.value.orig, "sqlstate", None) in wanted, err.value
    assert world.state() == before


@pytest.fixture
def rejected(world: World) -> Any:
    return lambda sqlstates, write: expect_rejected(world, sqlstates, write)


def sql(statement: str, **params: Any) -> Any:
    return lambda conn: conn.execute(text(statement), params)


# ---------------------------------------------------------------- unbalanced inserts


def test_unbalanced_transaction(world: World, rejected: Any) -> None:
    s, c = world.seller.id, world.cash.id
    rejected(
        UNBALANCED,
        lambda conn: insert_transaction(
            conn, world.book.id, 100, [(c, "debit", 100), (s, "credit", 90)]
        ),
    )


def test_transaction_with_one_entry(world: World, rejected: Any) -> None:
    rejected(
        UNBALANCED,
        lambda conn: insert_transaction(conn, world.book.id, 100, [(world.cash.id, "debit", 100)]),
    )


def test_transaction_without_entries(world: World, rejected: Any) -> None:
    rejected(UNBALANCED, lambda conn: insert_transaction(conn, world.book.id, 100, []))


def test_entries_that_balance_but_do_not_match_the_total(world: World, rejected: Any) -> None:
    s, c = world.seller.id, world.cash.id
    rejected(
        UNBALANCED,
        lambda conn: insert_transaction(
            conn, world.book.id, 50, [(c, "debit", 100), (s, "credit", 100)]
        ),
    )


@pytest.mark.parametrize("which", ["posted", "pending"])
def test_extra_balanced_entries_on_an_existing_transaction(
    world: World, rejected: Any, which: str
) -> None:
    txn = getattr(world, which)
    pair = [(world.cash.id, "debit", 7), (world.seller.id, "credit", 7)]
    # Refused as unbalanced at commit, or at once as a late entry: either way, never written.
    rejected(
        {UNBALANCED, IMMUTABLE}, lambda conn: insert_entries(conn, txn.id, world.book.id, pair)
    )


@pytest.mark.parametrize("which", ["posted", "pending", "archived"])
@pytest.mark.parametrize("extra", ["balanced pair", "one debit"])
def test_extra_entries_after_touching_the_transaction(
    world: World, rejected: Any, which: str, extra: str
) -> None:
    """A metadata update first (legitimate on its own) must not open the transaction to new
    entries."""
    txn = getattr(world, which)
    entries = [(world.cash.id, "debit", 7)]
    if extra == "balanced pair":
        entries.append((world.seller.id, "credit", 7))

    def write(conn: Connection) -> None:
        conn.execute(
            text("UPDATE ledger_transactions SET metadata = '{\"x\": 1}' WHERE id = :t"),
            {"t": txn.id},
        )
        insert_entries(conn, txn.id, world.book.id, entries)

    rejected({UNBALANCED, IMMUTABLE, ARCHIVED_TXN}, write)


def test_extra_entries_after_posting_in_the_same_transaction(world: World, rejected: Any) -> None:
    pair = [(world.cash.id, "debit", 7), (world.seller.id, "credit", 7)]

    def write(conn: Connection) -> None:
        conn.execute(
            text("UPDATE ledger_transactions SET status = 'posted' WHERE id = :t"),
            {"t": world.pending.id},
        )
        insert_entries(conn, world.pending.id, world.book.id, pair)

    rejected({UNBALANCED, IMMUTABLE}, write)


def test_entries_on_an_archived_transaction(world: World, rejected: Any) -> None:
    pair = [(world.cash.id, "debit", 7), (world.seller.id, "credit", 7)]
    rejected(
        {ARCHIVED_TXN, IMMUTABLE},
        lambda conn: insert_entries(conn, world.archived.id, world.book.id, pair),
    )


def test_new_transaction_inserted_as_archived_with_entries(world: World, rejected: Any) -> None:
    pair = [(world.cash.id, "debit", 7), (world.seller.id, "credit", 7)]
    rejected(
        ARCHIVED_TXN,
        lambda conn: insert_transaction(conn, world.book.id, 7, pair, status="archived"),
    )


@pytest.mark.parametrize("amount", [0, -5])
def test_zero_or_negative_amount(world: World, rejected: Any, amount: int) -> None:
    s, c = world.seller.id, world.cash.id
    entries = [(c, "debit", amount), (s, "credit", amount)]
    rejected(CHECK_VIOLATION, lambda conn: insert_transaction(conn, world.book.id, 1, entries))
    # A negative pair hidden in an otherwise positive transaction: amounts are checked one by one.
    entries = [(c, "debit", 10), (s, "credit", 15), (s, "debit", 5), (s, "credit", amount)]
    rejected(CHECK_VIOLATION, lambda conn: insert_transaction(conn, world.book.id, 15, entries))


def test_entry_on_an_account_of_another_ledger(world: World, rejected: Any) -> None:
    entries = [(world.cash.id, "debit", 5), (world.far.id, "credit", 5)]
    rejected(
        FOREIGN_KEY_VIOLATION, lambda conn: insert_transaction(conn, world.book.id, 5, entries)
    )
    # Claiming the other ledger for the entry does not help: the transaction is in this one.
    rejected(
        FOREIGN_KEY_VIOLATION,
        lambda conn: insert_transaction(
            conn, world.book.id, 5, entries, entry_ledger_id=world.foreign.id
        ),
    )


def test_unknown_direction(world: World, rejected: Any) -> None:
    entries = [(world.cash.id, "debit", 5), (world.seller.id, "sideways", 5)]
    rejected(CHECK_VIOLATION, lambda conn: insert_transaction(conn, world.book.id, 5, entries))


# ---------------------------------------------------------------- entries never change


@pytest.mark.parametrize(
    "change",
    [
        "amount = amount + 1",
        "direction = 'credit'",
        "account_id = account_id",
        "created_at = now()",
    ],
)
@pytest.mark.parametrize("which", ["posted", "pending", "archived"])
def test_update_of_an_entry(world: World, rejected: Any, change: str, which: str) -> None:
    txn = getattr(world, which)
    rejected(
        IMMUTABLE,
        sql(f"UPDATE ledger_entries SET {change} WHERE transaction_id = :t", t=txn.id),
    )


@pytest.mark.parametrize("which", ["posted", "pending", "archived"])
def test_delete_of_an_entry(world: World, rejected: Any, which: str) -> None:
    txn = getattr(world, which)
    rejected(IMMUTABLE, sql("DELETE FROM ledger_entries WHERE transaction_id = :t", t=txn.id))


# ---------------------------------------------------------------- transactions


@pytest.mark.parametrize(
    ("which", "target"),
    [
        ("posted", "pending"),
        ("posted", "archived"),
        ("archived", "posted"),
        ("archived", "pending"),
    ],
)
def test_invalid_status_transition(world: World, rejected: Any, which: str, target: str) -> None:
    txn = getattr(world, which)
    rejected(
        INVALID_TRANSITION,
        sql("UPDATE ledger_transactions SET status = :s WHERE id = :t", s=target, t=txn.id),
    )


@pytest.mark.parametrize(
    "change",
    [
        "total_amount = total_amount + 1",
        "effective_at = effective_at - interval '1 day'",
        "external_id = 'rewritten'",
        "description = 'rewritten'",
        "request_hash = 'x'",
        "created_at = now() - interval '1 day'",
        "reverses_id = id",
    ],
)
@pytest.mark.parametrize("which", ["posted", "pending"])
def test_change_of_an_immutable_transaction_field(
    world: World, rejected: Any, change: str, which: str
) -> None:
    txn = getattr(world, which)
    rejected(IMMUTABLE, sql(f"UPDATE ledger_transactions SET {change} WHERE id = :t", t=txn.id))


def test_move_of_a_transaction_to_another_ledger(world: World, rejected: Any) -> None:
    rejected(
        IMMUTABLE,
        sql(
            "UPDATE ledger_transactions SET ledger_id = :l WHERE id = :t",
            l=world.foreign.id,
            t=world.posted.id,
        ),
    )


def test_delete_of_a_transaction(world: World, rejected: Any) -> None:
    for txn in (world.posted, world.pending, world.archived):
        rejected(IMMUTABLE, sql("DELETE FROM ledger_transactions WHERE id = :t", t=txn.id))


def test_reversal_link_is_set_once_and_only_on_posted(world: World, rejected: Any) -> None:
    book = world.book
    reversal = book.reverse(world.posted)
    other = book.write(debit(world.seller, 1), credit(world.cash, 1))
    before = world.state()
    rejected(
        IMMUTABLE,
        sql(
            "UPDATE ledger_transactions SET reversed_by_id = :o WHERE id = :t",
            o=other.id,
            t=world.posted.id,
        ),
    )
    rejected(
        IMMUTABLE,
        sql(
            "UPDATE ledger_transactions SET reversed_by_id = NULL WHERE id = :t",
            t=world.posted.id,
        ),
    )
    for txn in (world.pending, world.archived):
        rejected(
            IMMUTABLE,
            sql(
                "UPDATE ledger_transactions SET reversed_by_id = :o WHERE id = :t",
                o=other.id,
                t=txn.id,
            ),
        )
    assert world.state() == before
    assert book.txn(world.posted).reversed_by_id == reversal.id


def test_reversal_link_points_at_a_reversal_of_this_transaction(
    world: World, rejected: Any
) -> None:
    """Marking a posted transaction reversed by something that does not reverse it would make it
    irreversible through the ledger: refused."""
    book = world.book
    other = book.write(debit(world.seller, 1), credit(world.cash, 1))
    unrelated_reversal = book.reverse(other)
    for target in (other, unrelated_reversal, world.posted):
        rejected(
            IMMUTABLE,
            sql(
                "UPDATE ledger_transactions SET reversed_by_id = :o WHERE id = :t",
                o=target.id,
                t=world.posted.id,
            ),
        )
    # The ledger's own reversal still links it.
    reversal = book.reverse(world.posted)
    assert book.txn(world.posted).reversed_by_id == reversal.id


# ---------------------------------------------------------------- accounts


@pytest.mark.parametrize(
    "change",
    [
        "posted_credits = posted_credits + 1",
        "pending_debits = pending_debits + 1",
        "posted_debits = posted_debits + 5",
        "pending_credits = pending_credits - 1",
        "lock_version = lock_version + 1",
        "lock_version = 0",
        "normal_balance = 'debit'",
        "currency = 'EUR'",
    ],
)
def test_direct_update_of_an_account(world: World, rejected: Any, change: str) -> None:
    rejected(
        IMMUTABLE,
        sql(f"UPDATE ledger_accounts SET {change} WHERE id = :a", a=world.seller.id),
    )


def test_direct_update_inside_a_function_is_rejected_too(world: World, rejected: Any) -> None:
    rejected(
        IMMUTABLE,
        sql(
            "DO $$ BEGIN UPDATE ledger_accounts SET posted_credits = posted_credits + 1"
            f" WHERE id = '{world.seller.id}'; END $$"
        ),
    )


@pytest.mark.parametrize(
    "column",
    ["pending_debits", "pending_credits", "posted_debits", "posted_credits", "lock_version"],
)
def test_new_account_with_non_zero_totals(world: World, rejected: Any, column: str) -> None:
    rejected(
        IMMUTABLE,
        sql(
            "INSERT INTO ledger_accounts (id, ledger_id, name, normal_balance, currency, "
            f"{column}) VALUES (gen_random_uuid(), :l, 'forged', 'credit', 'USD', 1000)",
            l=world.book.id,
        ),
    )


def test_delete_of_an_account_with_entries(world: World, rejected: Any) -> None:
    rejected(IMMUTABLE, sql("DELETE FROM ledger_accounts WHERE id = :a", a=world.seller.id))


def test_account_in_another_currency_than_its_ledger(world: World, rejected: Any) -> None:
    rejected(
        FOREIGN_KEY_VIOLATION,
        sql(
            "INSERT INTO ledger_accounts (id, ledger_id, name, normal_balance, currency)"
            " VALUES (gen_random_uuid(), :l, 'x', 'credit', 'EUR')",
            l=world.book.id,
        ),
    )


def test_change_of_a_ledgers_currency_or_exponent(world: World, rejected: Any) -> None:
    rejected(
        IMMUTABLE, sql("UPDATE ledgers SET currency_exponent = 3 WHERE id = :l", l=world.book.id)
    )
    rejected(
        {IMMUTABLE, FOREIGN_KEY_VIOLATION},
        sql("UPDATE ledgers SET currency = 'EUR' WHERE id = :l", l=world.book.id),
    )


# ---------------------------------------------------------------- truncate


@pytest.mark.parametrize(
    "statement",
    [
        # CASCADE: payout items (0011) refer to entries, and without it PostgreSQL refuses for
        # that reason before the ledger's own guard is asked.
        "TRUNCATE ledger_entries CASCADE",
        "TRUNCATE ledger_transactions CASCADE",
        "TRUNCATE ledger_accounts CASCADE",
        "TRUNCATE ledgers CASCADE",
    ],
)
def test_truncate(engine: Engine, statement: str) -> None:
    # The session's other tests share these tables: never commit, whatever happens.
    with engine.connect() as conn, pytest.raises(DBAPIError) as err:
        try:
            conn.execute(text(statement))
        finally:
            conn.rollback()
    assert getattr(err.value.orig, "sqlstate", None) == IMMUTABLE


# ---------------------------------------------------------------- legitimate raw writes


def test_legitimate_raw_writes_still_work(world: World) -> None:
    book, s, c = world.book, world.seller.id, world.cash.id
    version = book.get(world.seller).lock_version
    with world.engine.begin() as conn:
        conn.execute(
            text(
                'UPDATE ledger_transactions SET metadata = metadata || \'{"note": "ok"}\''
                " WHERE id IN (:p, :a)"
            ),
            {"p": world.posted.id, "a": world.archived.id},
        )
        conn.execute(
            text("UPDATE ledger_accounts SET metadata = '{\"tier\": 1}', name = 'n' WHERE id = :a"),
            {"a": s},
        )
    assert book.txn(world.posted).metadata == {"note": "ok"}
    assert book.txn(world.archived).metadata == {"note": "ok"}
    assert book.get(world.seller).metadata == {"tier": 1}
    assert book.get(world.seller).lock_version == version

    # A balanced raw insert and a raw post keep the running totals right.
    with world.engine.begin() as conn:
        insert_transaction(conn, book.id, 9, [(c, "debit", 9), (s, "credit", 9)])
        conn.execute(
            text("UPDATE ledger_transactions SET status = 'posted' WHERE id = :t"),
            {"t": world.pending.id},
        )
    seller = book.get(world.seller)
    assert triple(seller, "posted") == (129, 0, 129)
    assert triple(seller, "pending") == (129, 0, 129)
    assert seller.lock_version == version + 2
    assert book.txn(world.pending).status.value == "posted"


def test_one_statement_of_many_transactions_moves_each_account_once(world: World) -> None:
    """A set-based write (migration 0007: the totals move once per statement): a hundred
    transactions through the same two accounts, pending and posted, in one INSERT. The totals
    are the entries' sums and lock_version grows by one per entry, as one write at a time."""
    book, s, c = world.book, world.seller.id, world.cash.id
    before_seller, before_cash = book.get(world.seller), book.get(world.cash)
    txns = [(uuid.uuid4(), "pending" if n % 2 else "posted", n + 1) for n in range(100)]
    with world.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_transactions (id, ledger_id, status, effective_at,"
                " total_amount) SELECT id, :ledger, status, now(), amount"
                " FROM jsonb_to_recordset(CAST(:txns AS jsonb))"
                " AS x(id uuid, status text, amount bigint)"
            ),
            {
                "ledger": book.id,
                "txns": json.dumps([{"id": str(i), "status": t, "amount": a} for i, t, a in txns]),
            },
        )
        conn.execute(
            text(
                "INSERT INTO ledger_entries"
                " (id, transaction_id, ledger_id, account_id, direction, amount, ordinal)"
                " SELECT gen_random_uuid(), x.id, :ledger, e.account, e.direction, x.amount,"
                "        e.ordinal"
                " FROM jsonb_to_recordset(CAST(:txns AS jsonb)) AS x(id uuid, amount bigint),"
                "      (VALUES (CAST(:cash AS uuid), 'debit', 0), (CAST(:seller AS uuid),"
                "               'credit', 1)) AS e(account, direction, ordinal)"
            ),
            {
                "ledger": book.id,
                "cash": c,
                "seller": s,
                "txns": json.dumps([{"id": str(i), "amount": a} for i, _, a in txns]),
            },
        )
    posted = sum(a for _, st, a in txns if st == "posted")
    pending = sum(a for _, st, a in txns if st == "pending")
    seller, cash = book.get(world.seller), book.get(world.cash)
    assert seller.totals.posted_credits == before_seller.totals.posted_credits + posted
    assert seller.totals.pending_credits == before_seller.totals.pending_credits + pending
    assert cash.totals.posted_debits == before_cash.totals.posted_debits + posted
    assert cash.totals.pending_debits == before_cash.totals.pending_debits + pending
    assert seller.lock_version == before_seller.lock_version + 100
    assert cash.lock_version == before_cash.lock_version + 100


def test_one_bad_entry_fails_the_whole_statement(world: World, rejected: Any) -> None:
    """Entries of one INSERT, one of them on an account of another ledger: nothing is written,
    with the error the entry alone would get."""
    book, s, c = world.book, world.seller.id, world.cash.id

    def write(conn: Connection) -> None:
        txn = insert_transaction(conn, book.id, 5, [])
        conn.execute(
            text(
                "INSERT INTO ledger_entries"
                " (id, transaction_id, ledger_id, account_id, direction, amount, ordinal)"
                " VALUES (gen_random_uuid(), :t, :l, :c, 'debit', 5, 0),"
                "        (gen_random_uuid(), :t, :l, :s, 'credit', 4, 1),"
                "        (gen_random_uuid(), :t, :l, :far, 'credit', 1, 2)"
            ),
            {"t": txn, "l": book.id, "c": c, "s": s, "far": world.far.id},
        )

    rejected(FOREIGN_KEY_VIOLATION, write)
