"""Itemized payouts: what a payout pays out, line by line, fixed in the database transaction that
reserves it (``Payouts.reserve_payout``), adding up to its amount.

The seller's available balance is posted credits minus posted and pending debits. A payout's
lines say where each part of it comes from:

=============================  ==============================================================
``earning``                    a posted earning's credit (reference: the order)
``refund``                     a refund's debit of a posted earning (the refund)
``chargeback``                 a lost dispute's debit (the dispute)
``payout_returned``            a returned payout's credit (the returned payout)
``adjustment``                 any other posted entry of the seller's account, such as one
                               written through the ledger API (its external id, else its
                               transaction)
``brought_forward``            (+) what the seller's earlier payouts held back or carried
                               forward: it counts again now (negative only after a payout
                               failed whose held-back amounts a later payout had brought
                               forward already)
``payout_before_itemization``  (-) a payout reserved before payouts were itemized, paid since
                               (its debit is posted, its entries were never itemized)
``reserve_held``               (-) the rolling reserves held now, one line
``dispute_open``               (-) an open dispute (the dispute)
``payout_in_transit``          (-) a payout reserved before itemization, still pending
``pending_debit``              (-) any other pending debit of the seller's account
``instant_fee``                (-) an instant payout's fee (debited on top of its amount)
``carried_forward``            (-) what stays available after the payout (a payout of less than
                               the available balance); the next payout brings it forward
=============================  ==============================================================

The first five are **entry lines**: each names one posted ledger entry of the seller's account
(``ledger_entry_id``). A reservation takes every posted entry not already in a live item; an
entry is in at most one live item, and PostgreSQL enforces it (``uq_payout_items_live_entry``,
a unique index over the items not released). The payout's own debit is never an item.

The others name no entry. ``brought_forward`` is minus the sum of every live line of the kinds
held back and carried or brought forward, so what one payout held back or left is counted by
the next, once. That is why the lines add up: available = the entries not yet itemized +
brought forward - payouts before itemization - held back, and the payout takes amount + fee of
it (``carried_forward`` is minus what is left). The reservation checks that identity against
the ledger's balances, read after the payout's debit is written (which locks the seller's ledger
account: no writer changes it meanwhile), and refuses to reserve a payout whose lines would not
add up (``PayoutItemsDoNotAddUp``). PostgreSQL checks the sum too (the 0011 migration's
``payout_items_add_up``, after the one statement that writes a payout's lines), and refuses any
change to a line but its release.

A failed or cancelled payout paid nothing: ``release_items`` marks its items released in the
transaction that marks it so, and its entries (and what it brought forward) go to the next
payout. A returned payout keeps its items, which say what it paid for; the money that came back
is the return's credit, an entry line of a later payout. So each entry is paid out once, and the
return is paid out once: nothing twice, nothing lost.

Payouts reserved before itemization (``payouts.item_count`` NULL) have no items: ``list_items``
answers them with ``itemized`` false.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from marketplace.rows import from_row
from marketplace.statements import StatementKind, seller_entry_kind
from marketplace.tables import payout_items
from marketplace.types import Payout


class ItemKind(enum.StrEnum):
    EARNING = "earning"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    PAYOUT_RETURNED = "payout_returned"
    ADJUSTMENT = "adjustment"
    BROUGHT_FORWARD = "brought_forward"
    PAYOUT_BEFORE_ITEMIZATION = "payout_before_itemization"
    RESERVE_HELD = "reserve_held"
    DISPUTE_OPEN = "dispute_open"
    PAYOUT_IN_TRANSIT = "payout_in_transit"
    PENDING_DEBIT = "pending_debit"
    INSTANT_FEE = "instant_fee"
    CARRIED_FORWARD = "carried_forward"


HELD_BACK = (
    ItemKind.RESERVE_HELD,
    ItemKind.DISPUTE_OPEN,
    ItemKind.PAYOUT_IN_TRANSIT,
    ItemKind.PENDING_DEBIT,
)
# The lines whose amounts a later payout brings forward (minus their live sum).
CARRIED = (*HELD_BACK, ItemKind.CARRIED_FORWARD, ItemKind.BROUGHT_FORWARD)

# A posted entry's kind as statements name it (``seller_entry_kind``, from the transaction's
# external id) -> the line's kind; any other is an adjustment.
_ENTRY_KINDS: dict[StatementKind, ItemKind] = {
    StatementKind.EARNING: ItemKind.EARNING,
    StatementKind.REFUND: ItemKind.REFUND,
    StatementKind.CHARGEBACK: ItemKind.CHARGEBACK,
    StatementKind.PAYOUT_RETURNED: ItemKind.PAYOUT_RETURNED,
}


class PayoutItemsDoNotAddUp(RuntimeError):
    """The lines of a payout being reserved do not add up to what the ledger says is available:
    the reservation is refused (a bug, or a write this module does not know of)."""


@dataclass(frozen=True, slots=True)
class PayoutItem:
    payout_id: str
    line: int
    """1, 2, ... in the payout."""
    kind: str
    reference: str | None
    """The order, refund, dispute or payout id the line is about (``adjustment``: the
    transaction's external id, else its id)."""
    ledger_entry_id: uuid.UUID | None
    """The ledger entry it pays out; None: a line of no entry."""
    ledger_transaction_id: uuid.UUID | None
    amount: int
    """Signed minor units: what the line adds to the payout."""
    effective_at: datetime
    """The entry's effective time; a line of no entry: when the payout was reserved."""
    released_at: datetime | None
    """Its payout failed or was cancelled: the line no longer counts."""


@dataclass(frozen=True, slots=True)
class PayoutItems:
    """A page of a payout's lines, and their totals."""

    payout_id: str
    seller_id: str
    currency: str
    amount: int
    """The payout's amount."""
    itemized: bool
    """False: reserved before payouts were itemized; no lines were recorded."""
    total: int
    """The sum of all the payout's lines (every page): its amount, when itemized."""
    count: int
    items: list[PayoutItem] = field(default_factory=list)
    next_after: int | None = None
    """The line to continue after, if there is a next page."""


def items_url(payout_id: str) -> str:
    return f"/v1/payouts/{payout_id}/items"


def items_link(payout: Payout) -> dict[str, Any]:
    """What an event or a report says of a payout's items."""
    return {"items_url": items_url(payout.id), "item_count": payout.item_count}


@dataclass(slots=True)
class _Line:
    kind: ItemKind
    amount: int
    effective_at: datetime
    reference: str | None = None
    ledger_entry_id: uuid.UUID | None = None
    ledger_transaction_id: uuid.UUID | None = None


# The seller's posted entries not in a live item, and its pending debits, in one pass over the
# account's entries; payouts' own transactions are left out (``:own`` is the one being written,
# not yet in ``payouts``), and so are pending debits of itemized payouts (their lines hold them).
_ENTRIES = text(
    """
SELECT e.id, e.transaction_id, e.direction, e.amount, t.status, t.effective_at, t.external_id,
       p.id AS payout_id
  FROM ledger_entries e
  JOIN ledger_transactions t ON t.id = e.transaction_id
  LEFT JOIN payouts p ON p.ledger_transaction_id = t.id
 WHERE e.account_id = :account
   AND t.id <> :own
   AND (
        (t.status = 'posted' AND p.id IS NULL
         AND NOT EXISTS (SELECT 1 FROM payout_items i
                          WHERE i.ledger_entry_id = e.id AND i.released_at IS NULL))
     OR (t.status = 'pending' AND e.direction = 'debit' AND p.item_count IS NULL)
   )
 ORDER BY t.effective_at, e.id
"""
)

# Payouts reserved before itemization whose debit is posted (paid, or paid and returned) and
# that no live line has counted yet.
_BEFORE_ITEMIZATION = text(
    """
SELECT p.id, p.amount + p.fee AS debit, p.created_at
  FROM payouts p
 WHERE p.seller_id = :seller AND p.item_count IS NULL AND p.status IN ('paid', 'returned')
   AND NOT EXISTS (SELECT 1 FROM payout_items i
                    WHERE i.seller_id = :seller AND i.kind = 'payout_before_itemization'
                      AND i.reference = p.id AND i.released_at IS NULL
                      AND i.ledger_entry_id IS NULL)
 ORDER BY p.created_at, p.id
"""
)

# What earlier payouts held back or carried and brought forward (their live lines), and the
# latest of them.
_CARRIED = text(
    """
SELECT coalesce(sum(i.amount), 0) AS amount,
       (SELECT j.payout_id FROM payout_items j
         WHERE j.seller_id = :seller AND j.released_at IS NULL AND j.ledger_entry_id IS NULL
           AND j.kind = ANY (:kinds)
         ORDER BY j.created_at DESC, j.payout_id DESC LIMIT 1) AS latest
  FROM payout_items i
 WHERE i.seller_id = :seller AND i.released_at IS NULL AND i.ledger_entry_id IS NULL
   AND i.kind = ANY (:kinds)
"""
)


def payout_lines(
    conn: Connection,
    *,
    seller_id: str,
    account_id: uuid.UUID,
    own_transaction_id: uuid.UUID,
    amount: int,
    fee: int,
    available_after: int,
    now: datetime,
) -> list[_Line]:
    """The lines of a payout of ``amount`` (+ ``fee``) being reserved, whose debit
    (``own_transaction_id``) is written and left ``available_after``; they add up to
    ``amount`` or ``PayoutItemsDoNotAddUp`` is raised."""
    carried = conn.execute(_CARRIED, {"seller": seller_id, "kinds": [str(k) for k in CARRIED]})
    brought = carried.one()
    lines: list[_Line] = []
    if brought.amount:
        lines.append(
            _Line(ItemKind.BROUGHT_FORWARD, -int(brought.amount), now, reference=brought.latest)
        )
    held: list[_Line] = []
    reserves = 0
    rows = conn.execute(_ENTRIES, {"account": account_id, "own": own_transaction_id}).all()
    for row in rows:
        found = seller_entry_kind(row.external_id, row.amount, seller_id)
        kind = found[0] if found is not None else None
        if row.status == "posted":
            lines.append(_entry_line(row, found))
        elif kind is StatementKind.RESERVE:
            reserves += row.amount
        else:
            held.append(_held_line(row, found, now))
    for payout in conn.execute(_BEFORE_ITEMIZATION, {"seller": seller_id}).all():
        lines.append(
            _Line(
                ItemKind.PAYOUT_BEFORE_ITEMIZATION,
                -int(payout.debit),
                payout.created_at,
                reference=payout.id,
            )
        )
    if reserves:
        lines.append(_Line(ItemKind.RESERVE_HELD, -reserves, now))
    lines.extend(held)
    counted = sum(line.amount for line in lines)
    if counted != available_after + amount + fee:
        raise PayoutItemsDoNotAddUp(
            f"the lines of seller {seller_id!r}'s payout count {counted} available, the ledger "
            f"{available_after + amount + fee}"
        )
    if fee:
        lines.append(_Line(ItemKind.INSTANT_FEE, -fee, now))
    if available_after:
        lines.append(_Line(ItemKind.CARRIED_FORWARD, -available_after, now))
    return lines


def _entry_line(row: Any, found: tuple[StatementKind, str] | None) -> _Line:
    signed = row.amount if row.direction == "credit" else -row.amount
    kind = _ENTRY_KINDS.get(found[0]) if found is not None else None
    if kind is None or found is None:
        kind, reference = ItemKind.ADJUSTMENT, row.external_id or str(row.transaction_id)
    else:
        reference = found[1]
    return _Line(
        kind,
        signed,
        row.effective_at,
        reference=reference,
        ledger_entry_id=row.id,
        ledger_transaction_id=row.transaction_id,
    )


def _held_line(row: Any, found: tuple[StatementKind, str] | None, now: datetime) -> _Line:
    if row.payout_id is not None:
        kind, reference = ItemKind.PAYOUT_IN_TRANSIT, row.payout_id
    elif found is not None and found[0] is StatementKind.CHARGEBACK:
        kind, reference = ItemKind.DISPUTE_OPEN, found[1]
    else:
        kind, reference = ItemKind.PENDING_DEBIT, row.external_id or str(row.transaction_id)
    return _Line(
        kind, -row.amount, now, reference=reference, ledger_transaction_id=row.transaction_id
    )


# One statement for all the lines, so that the check that they add up (the 0011 migration's
# statement trigger ``payout_items_add_up``) sees them all.
_WRITE = text(
    """
INSERT INTO payout_items (payout_id, line, seller_id, kind, reference, ledger_entry_id,
                          ledger_transaction_id, amount, effective_at, created_at)
SELECT :payout, x.line, :seller, x.kind, x.reference, x.ledger_entry_id,
       x.ledger_transaction_id, x.amount, x.effective_at, :now
  FROM jsonb_to_recordset(CAST(:lines AS jsonb))
       AS x(line integer, kind text, reference text, ledger_entry_id uuid,
            ledger_transaction_id uuid, amount bigint, effective_at timestamptz)
"""
)


def write_items(
    conn: Connection, payout_id: str, seller_id: str, lines: list[_Line], now: datetime
) -> None:
    """Insert the payout's lines in one statement: PostgreSQL refuses an entry already in a live
    item (``uq_payout_items_live_entry``) and lines that do not add up to the payout's amount
    (``ck_payout_items_add_up``)."""
    rows = [
        {
            "line": n,
            "kind": str(line.kind),
            "reference": line.reference,
            "ledger_entry_id": line.ledger_entry_id,
            "ledger_transaction_id": line.ledger_transaction_id,
            "amount": line.amount,
            "effective_at": line.effective_at.isoformat(),
        }
        for n, line in enumerate(lines, start=1)
    ]
    conn.execute(
        _WRITE,
        {
            "payout": payout_id,
            "seller": seller_id,
            "now": now,
            "lines": json.dumps(rows, default=str),
        },
    )


def release_items(conn: Connection, payout_id: str, now: datetime) -> None:
    """A failed or cancelled payout's items no longer count: its entries (and what it brought
    forward) go to the next payout. Call it in the transaction that marks the payout so."""
    conn.execute(
        payout_items.update()
        .where(payout_items.c.payout_id == payout_id, payout_items.c.released_at.is_(None))
        .values(released_at=now)
    )


def list_items(
    conn: Connection, payout: Payout, *, after: int | None = None, limit: int = 25
) -> PayoutItems:
    """A page of the payout's lines in order, with the total of them all."""
    t = payout_items
    query = select(t).where(t.c.payout_id == payout.id)
    if after is not None:
        query = query.where(t.c.line > after)
    rows = conn.execute(query.order_by(t.c.line).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    total = conn.execute(
        select(func.coalesce(func.sum(t.c.amount), 0)).where(t.c.payout_id == payout.id)
    ).scalar_one()
    return PayoutItems(
        payout_id=payout.id,
        seller_id=payout.seller_id,
        currency=payout.currency,
        amount=payout.amount,
        itemized=payout.item_count is not None,
        total=int(total),
        count=payout.item_count or 0,
        items=[from_row(PayoutItem, r) for r in rows],
        next_after=rows[-1].line if more else None,
    )
