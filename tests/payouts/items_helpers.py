"""What the itemized payout tests share: a seller with money in the ways the ledger knows, and
the checks every payout's lines must pass (``marketplace.payout_items``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from ledger_core import Direction, NewEntry, NewLedgerTransaction, TransactionStatus
from marketplace import Payouts, RollingReserve
from marketplace.payout_items import PayoutItem, PayoutItems, list_items
from marketplace.types import PlatformAccount

ACCOUNT = "000123456789"
ROUTING = "110000000"


def new_seller(
    conn: Connection, payouts: Payouts, seller_id: str, *, reserve_bp: int | None = None
) -> None:
    m = payouts.marketplace
    reserve = RollingReserve(reserve_bp, timedelta(days=30)) if reserve_bp else None
    m.create_seller(conn, seller_id=seller_id, name="Shop", currency="USD", rolling_reserve=reserve)
    payouts.set_payout_account(conn, seller_id, ACCOUNT, ROUTING, "Jane Doe")


def earn(
    conn: Connection, payouts: Payouts, seller_id: str, order_id: str, amount: int, fee: int = 0
) -> None:
    """A posted earning (with its reserve held, if the seller has one)."""
    m = payouts.marketplace
    m.book_earning(conn, seller_id=seller_id, order_id=order_id, amount=amount, fee=fee)
    m.post_earning(conn, seller_id, order_id)


def adjust(conn: Connection, payouts: Payouts, seller_id: str, amount: int, key: str) -> None:
    """A posted adjustment written through the raw ledger API: credit (> 0) or debit the
    seller against the platform's clearing account."""
    m = payouts.marketplace
    account_id, currency = m.seller_account(conn, seller_id)
    clearing = m.platform_ledger(conn, currency, livemode=True).account(PlatformAccount.CLEARING)
    seller_side = Direction.CREDIT if amount > 0 else Direction.DEBIT
    other_side = Direction.DEBIT if amount > 0 else Direction.CREDIT
    m.ledger.create_transaction(
        conn,
        NewLedgerTransaction(
            ledger_id=m.platform_ledger(conn, currency, livemode=True).ledger_id,
            entries=(
                NewEntry(account_id, seller_side, abs(amount)),
                NewEntry(clearing, other_side, abs(amount)),
            ),
            status=TransactionStatus.POSTED,
            external_id=key,
            description="Goodwill adjustment",
        ),
    )


def items_of(conn: Connection, payouts: Payouts, payout_id: str) -> PayoutItems:
    """All the payout's lines (one page), checked: they add up to its amount, and the lines
    count what ``item_count`` says."""
    payout = payouts.get_payout(conn, payout_id)
    items = list_items(conn, payout, limit=10_000)
    assert items.itemized
    assert items.total == payout.amount == sum(i.amount for i in items.items)
    assert items.count == len(items.items) == payout.item_count
    assert [i.line for i in items.items] == list(range(1, len(items.items) + 1))
    return items


def lines(items: PayoutItems) -> list[tuple[str, str | None, int]]:
    """(kind, reference, amount) of each line."""
    return [(i.kind, i.reference, i.amount) for i in items.items]


def entry_lines(items: PayoutItems) -> list[PayoutItem]:
    return [i for i in items.items if i.ledger_entry_id is not None]


def assert_each_entry_once(conn: Connection, payouts: Payouts, seller_id: str) -> None:
    """Right after a reservation: every posted entry of the seller's account, apart from
    payouts' own debits, is in exactly one live item."""
    account_id, _ = payouts.marketplace.seller_account(conn, seller_id)
    rows = conn.execute(
        text(
            """
SELECT e.id, (SELECT count(*) FROM payout_items i
               WHERE i.ledger_entry_id = e.id AND i.released_at IS NULL) AS live
  FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
 WHERE e.account_id = :account AND t.status = 'posted'
   AND NOT EXISTS (SELECT 1 FROM payouts p WHERE p.ledger_transaction_id = t.id)
"""
        ),
        {"account": account_id},
    ).all()
    assert all(r.live == 1 for r in rows), [r for r in rows if r.live != 1]


def paid(conn: Connection, payouts: Payouts, payout_id: str) -> None:
    payouts.begin_submission(conn, payout_id)
    payouts.mark_submitted(conn, payout_id, f"rail-{payout_id}")
    payouts.mark_paid(conn, payout_id)


def deadline() -> datetime:
    return datetime.now(UTC) + timedelta(days=7)


def count_items(engine: Engine, payout_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM payout_items WHERE payout_id = :p"), {"p": payout_id}
            ).scalar_one()
        )
