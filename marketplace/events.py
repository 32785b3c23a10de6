"""Events of the marketplace: a transactional outbox on PostgreSQL.

``record_event`` writes an event in the caller's database transaction, the one that makes the
change the event tells of, so an event exists exactly when its change committed (never for a
rolled-back change, never lost after a committed one). Events are numbered per seller
(``sequence``; the ``event_streams`` row lock makes sequence order the commit order) and fanned
out, in the same statement, to one pending delivery per webhook endpoint subscribed to the type.
A ``pg_notify('webhook_deliveries', '<endpoint id> <seller id>')`` tells the worker's dispatcher
at commit which delivery streams have work; it starts their delivery workflows, which send the
deliveries in sequence, signed (``signatures``), retried with back-off (activities.webhooks).

``balance.available_changed`` is recorded by ``record_available_change`` when a seller's
available balance differs from the last one reported (kept on the stream row), so a change that
moves money but not the available balance (a payout paid, an earning booked) sends none.

Both run now or with the commit of the caller's transaction (``ledger_core.deferred``), so that a
hot path (booking, releasing holds) keeps its stream locks only while the server works.

``Events`` reads them back (``GET /v1/events``); the endpoints and deliveries are
``marketplace.webhooks``.
"""

from __future__ import annotations

import enum
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import Row

from ledger_core.deferred import Statement, run
from ledger_core.errors import ValidationFailed
from marketplace.checks import check_limit, utc_now
from marketplace.errors import event_not_found
from marketplace.rows import from_row, page_of, row_by_id
from marketplace.tables import events
from marketplace.types import Dispute, Earning, Page


class EventType(enum.StrEnum):
    EARNING_CREATED = "earning.created"
    EARNING_POSTED = "earning.posted"
    EARNING_REFUNDED = "earning.refunded"
    EARNING_CANCELLED = "earning.cancelled"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_WON = "dispute.won"
    DISPUTE_LOST = "dispute.lost"
    PAYOUT_CREATED = "payout.created"
    PAYOUT_PAID = "payout.paid"
    PAYOUT_FAILED = "payout.failed"
    PAYOUT_RETURNED = "payout.returned"
    PAYOUT_CANCELLED = "payout.cancelled"
    BALANCE_AVAILABLE_CHANGED = "balance.available_changed"
    WALLET_CREATED = "wallet.created"
    WALLET_TOP_UP_PENDING = "wallet.top_up.pending"
    WALLET_TOP_UP_SETTLED = "wallet.top_up.settled"
    WALLET_TOP_UP_FAILED = "wallet.top_up.failed"
    WALLET_TOP_UP_EXPIRY_CHANGED = "wallet.top_up.expiry_changed"
    WALLET_SPENT = "wallet.spent"
    WALLET_SPEND_REFUNDED = "wallet.spend.refunded"
    WALLET_TRANSFER = "wallet.transfer"
    WALLET_EXPIRED = "wallet.expired"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
ALL_EVENTS = "*"
# A wallet's events are a stream of their own: ``wallet/<wallet id>`` ('/' is never in a seller
# id), in the column that names a seller's stream.
WALLET_STREAM_PREFIX = "wallet/"


def wallet_stream(wallet_id: str) -> str:
    """The event stream of a wallet."""
    return WALLET_STREAM_PREFIX + wallet_id


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    seller_id: str
    sequence: int
    """1, 2, 3 ... per seller, in the order the changes committed."""
    type: str
    data: dict[str, Any]
    created_at: datetime
    position: int
    """Global order (the list cursor)."""
    livemode: bool = True
    """Its seller's or wallet's mode: a test-mode object's events go to test endpoints only."""

    @property
    def wallet_id(self) -> str | None:
        """The wallet whose event this is (None: a seller's)."""
        if self.seller_id.startswith(WALLET_STREAM_PREFIX):
            return self.seller_id.removeprefix(WALLET_STREAM_PREFIX)
        return None

    def payload(self) -> dict[str, Any]:
        """What a subscriber receives (and ``GET /v1/events`` returns). A wallet's event names
        its wallet (``wallet_id``) instead of a seller."""
        wallet_id = self.wallet_id
        owner = {"seller_id": self.seller_id} if wallet_id is None else {"wallet_id": wallet_id}
        return {
            "id": self.id,
            "object": "event",
            "type": self.type,
            **owner,
            "sequence": self.sequence,
            "livemode": self.livemode,
            "created_at": iso(self.created_at),
            "data": self.data,
        }

    def body(self) -> bytes:
        """The delivery body: the same bytes on every attempt."""
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":")).encode()


# -------------------------------------------------------------------- recording

# Events of several sellers in one statement (marketplace_record_events, in the 0006 migration):
# each seller's stream moves on by its number of events (the row lock orders a seller's events:
# sequence order is commit order), the events get consecutive sequences in input order, and every
# subscribed endpoint one pending delivery; one notification per delivery stream.
_RECORD = "SELECT marketplace_record_events(%s::jsonb, %s)"
# A credit-normal seller account's views (DESIGN.md); the previous available is what the stream
# last reported (0 before any). The caller's writes locked the account, so a seller's balance
# events are serialised and each compares with the one before.
_AVAILABLE_CHANGED = """
SELECT 1 AS ord, %s::text AS id, b.seller_id, 'balance.available_changed'::text AS type,
       jsonb_build_object('object', jsonb_build_object(
           'object', 'balance', 'seller_id', b.seller_id, 'currency', b.currency,
           'available', b.available, 'previous_available', b.before, 'pending', b.pending,
           'posted', b.posted)) AS data,
       b.available
  FROM (SELECT %s::text AS seller_id, %s::text AS currency,
               a.posted_credits - (a.pending_debits + a.posted_debits) AS available,
               (a.pending_credits + a.posted_credits) - (a.pending_debits + a.posted_debits)
                   AS pending,
               a.posted_credits - a.posted_debits AS posted,
               coalesce((SELECT last_available FROM event_streams WHERE seller_id = %s), 0)
                   AS before
          FROM ledger_accounts a WHERE a.id = %s) b
 WHERE b.available <> b.before
"""
# Constant text: the subquery is this module's own SQL, the values are parameters.
_RECORD_AVAILABLE_CHANGED = f"""
SELECT marketplace_record_events(
    coalesce((SELECT jsonb_agg(to_jsonb(changed)) FROM ({_AVAILABLE_CHANGED}) changed),
             '[]'::jsonb),
    %s)
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class NewEvent:
    seller_id: str
    type: EventType
    data: dict[str, Any]


def new_event_id() -> str:
    """``evt_`` + 12 hex digits of milliseconds + 20 random: unique, and sortable by time."""
    return f"evt_{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def record_events(
    conn: Connection, new: Sequence[NewEvent], *, at_commit: bool = False
) -> list[str]:
    """Write events in the caller's transaction (now, or with its commit: ledger_core.deferred)
    and fan them out to the subscribed endpoints, in one statement; returns their ids."""
    if not new:
        return []
    ids = [new_event_id() for _ in new]
    rows = [
        {
            "ord": i,
            "id": event_id,
            "seller_id": e.seller_id,
            "type": str(EventType(e.type)),
            "data": e.data,
        }
        for i, (event_id, e) in enumerate(zip(ids, new, strict=True))
    ]
    data = json.dumps(rows, default=_json_default, separators=(",", ":"))
    run(conn, Statement(_RECORD, (data, utc_now())), at_commit=at_commit)
    return ids


def record_event(
    conn: Connection, seller_id: str, type: EventType | str, data: dict[str, Any]
) -> str:
    """Write one event of ``seller_id`` now (see ``record_events``); returns its id."""
    return record_events(conn, [NewEvent(seller_id, EventType(type), data)])[0]


def record_available_change(
    conn: Connection,
    *,
    seller_id: str,
    account_id: uuid.UUID,
    currency: str,
    at_commit: bool = False,
) -> None:
    """Record ``balance.available_changed`` if the seller's available balance (read from its
    ledger account, ``account_id``) differs from the last one reported for the seller (0 before
    the first). Call it after the change, in its transaction."""
    run(
        conn,
        Statement(
            _RECORD_AVAILABLE_CHANGED,
            (new_event_id(), seller_id, currency, seller_id, account_id, utc_now()),
        ),
        at_commit=at_commit,
    )


def earning_object(e: Earning) -> dict[str, Any]:
    """An earning as ``GET /v1/sellers/{id}/earnings/{order}`` shows it."""
    return {
        "object": "earning",
        "order_id": e.order_id,
        "seller_id": e.seller_id,
        "currency": e.currency,
        "amount": e.amount,
        "fee": e.fee,
        "net": e.net,
        "status": str(e.status),
        "hold_until": iso(e.hold_until),
        "posted_at": iso(e.posted_at),
        "cancelled_at": iso(e.cancelled_at),
        "ledger_transaction_id": str(e.ledger_transaction_id),
        "reserve_amount": e.reserve_amount,
        "reserve_release_at": iso(e.reserve_release_at),
        "reserve_released_at": iso(e.reserve_released_at),
        "metadata": e.metadata,
    }


def dispute_object(d: Dispute) -> dict[str, Any]:
    """A dispute as ``GET /v1/disputes/{id}`` shows it."""
    return {
        "object": "dispute",
        "id": d.id,
        "seller_id": d.seller_id,
        "order_id": d.order_id,
        "currency": d.currency,
        "amount": d.amount,
        "reason": d.reason,
        "status": str(d.status),
        "deadline": iso(d.deadline),
        "resolved_at": iso(d.resolved_at),
        "ledger_transaction_id": str(d.ledger_transaction_id),
        "workflow_id": f"dispute/{d.id}",
        "metadata": d.metadata,
    }


class Events:
    """The events recorded, to read. Every method takes a ``Connection`` inside a transaction the
    caller owns."""

    def get_event(self, conn: Connection, event_id: str) -> Event:
        row = row_by_id(conn, events, event_id)
        if row is None:
            raise event_not_found(event_id)
        return event_from_row(row)

    def list_events(
        self,
        conn: Connection,
        *,
        seller_id: str | None = None,
        types: Iterable[str] = (),
        livemode: bool | None = None,
        after: int | None = None,
        limit: int = 25,
    ) -> Page[Event]:
        """Events oldest first; ``after`` is a position (the previous page's ``next_after``), so
        a reader that keeps its cursor sees every event once, new ones as they commit. With
        ``livemode``, the events of that mode only (``ix_events_livemode_position``)."""
        check_limit(limit)
        query = select(events)
        if livemode is not None:
            query = query.where(events.c.livemode == livemode)
        if seller_id is not None:
            query = query.where(events.c.seller_id == seller_id)
        wanted = check_event_types(tuple(types), allow_all=False) if types else ()
        if wanted:
            query = query.where(events.c.type.in_(wanted))
        if after is not None:
            query = query.where(events.c.position > after)
        rows = conn.execute(query.order_by(events.c.position).limit(limit + 1)).all()
        return page_of(rows, limit, event_from_row, "position")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def check_event_types(types: Sequence[str], *, allow_all: bool = True) -> tuple[str, ...]:
    known = set(EVENT_TYPES) | ({ALL_EVENTS} if allow_all else set())
    if isinstance(types, str) or not types:
        raise ValidationFailed("event_types must be a non-empty list", field="event_types")
    unknown = [t for t in types if t not in known]
    if unknown:
        raise ValidationFailed(
            f"unknown event type(s) {', '.join(map(str, unknown))}; known: "
            + ", ".join(sorted(known)),
            field="event_types",
        )
    return tuple(dict.fromkeys(types))


def event_from_row(row: Row[Any]) -> Event:
    return from_row(Event, row)
