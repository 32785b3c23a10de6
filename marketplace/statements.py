"""Statements of a seller's or a wallet's money over a period: the ledger's statement of the
account (``ledger_core.statements``: opening, posted lines in statement-time order with the
running balance, closing, pending debits open at the close), each line with its kind and its
reference (order, refund, dispute, payout, top-up, spend, transfer id).

A line's kind comes from its ledger transaction's ``external_id``, which every marketplace write
sets in its own namespace (``earning:``, ``refund:``, ``payout:``, ``wallet-spend:``, ...) and which
the ledger never lets change (metadata can change, so it is not used). Anything else on the
account, written through the raw ledger API or unknown, is an ``adjustment``.

What is (and is not) a line on a seller's account, from the marketplace's writes:

- earning: the pending credit posts when the hold ends (``earning:<seller>/<order>``; a partial
  refund during the hold archives it and books the rest again, ``rebook:<n>:<seller>/<order>``);
  the platform's fee never touches the seller's account (it goes to the fees revenue in the same
  transaction), so there is no fee line;
- refund: a refund after posting is a posted debit (``refund:<id>``); during the hold it only
  archives the pending earning (no line);
- chargeback: a dispute is a pending debit (``dispute:<id>``), posted when lost (a line),
  archived when won (no line, so no "chargeback reversed" either);
- reserve: a rolling reserve is a pending debit (``reserve:<seller>/<order>``) archived when
  released: never a line, but held at the close while open;
- payout: a pending debit (``payout:<id>``) posted when paid (a line), archived when it fails or
  is cancelled; an instant payout's fee is part of that one debit (amount + fee), not an entry of
  its own; payout returned: a posted credit (``payout:<id>:return``).

A wallet's lines: top_up (``wallet-top-up:<id>``, when settled), spend (``wallet-spend:<id>``),
spend_refund (``wallet-refund:<id>``), transfer_in / transfer_out (``wallet-transfer:<id>``, by
the side of the wallet), expiry (``wallet-expiry:<top-up id>:<n>``).
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection

from ledger_core import AccountStatement, HeldEntry, StatementLine, ValidationFailed
from ledger_core.statements import MAX_LINES
from marketplace.service import OnMarketplace

MAX_PERIOD_DAYS = 366


class StatementKind(enum.StrEnum):
    EARNING = "earning"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    RESERVE = "reserve"
    PAYOUT = "payout"
    PAYOUT_RETURNED = "payout_returned"
    TOP_UP = "top_up"
    SPEND = "spend"
    SPEND_REFUND = "spend_refund"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    EXPIRY = "expiry"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True)
class StatementPeriod:
    """Calendar days ``from_date`` to ``to_date`` inclusive in ``time_zone``: the instants
    [``start``, ``end``)."""

    from_date: date
    to_date: date
    time_zone: str
    start: datetime
    end: datetime


def statement_period(from_date: date, to_date: date, time_zone: str = "UTC") -> StatementPeriod:
    """The period [from 00:00, to + 1 day 00:00) in ``time_zone`` (an IANA name). Raises
    ``ValidationFailed`` for an unknown zone, ``to`` before ``from``, or more than 366 days."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, e.g. America
        raise ValidationFailed(
            f"time_zone must be an IANA time zone name (such as Europe/Paris), got {time_zone!r}",
            field="time_zone",
        ) from None
    if to_date < from_date:
        raise ValidationFailed("to must not be before from", field="to")
    days = (to_date - from_date).days + 1
    if days > MAX_PERIOD_DAYS:
        raise ValidationFailed(
            f"a statement covers at most {MAX_PERIOD_DAYS} days, this one {days}", field="to"
        )
    try:
        start = datetime.combine(from_date, time(), zone).astimezone(UTC)
        end = datetime.combine(to_date + timedelta(days=1), time(), zone).astimezone(UTC)
    except OverflowError:
        raise ValidationFailed("the period is out of range", field="to") from None
    return StatementPeriod(from_date, to_date, time_zone, start, end)


@dataclass(frozen=True, slots=True)
class BalanceStatementLine:
    """A posted entry of the period: ``amount`` signed (+ is money to the seller or wallet),
    ``balance`` the posted balance after it; ``at``: its statement time."""

    kind: StatementKind
    reference: str
    amount: int
    balance: int
    at: datetime
    effective_at: datetime
    description: str | None
    ledger_entry_id: uuid.UUID
    ledger_transaction_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class HeldAtClose:
    """A pending debit open at the period's end (``amount`` < 0), since ``since``."""

    kind: StatementKind
    reference: str
    amount: int
    since: datetime
    description: str | None
    ledger_entry_id: uuid.UUID
    ledger_transaction_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class BalanceStatement:
    """A seller's (``subject`` "seller") or a wallet's statement; ``opening`` + the lines'
    amounts = ``closing``. ``held_at_close`` is informational, outside that arithmetic.
    ``digest``: SHA-256 of ``canonical()``, the same for the same figures."""

    subject: str
    id: str
    name: str
    currency: str
    currency_exponent: int
    period: StatementPeriod
    opening: int
    closing: int
    lines: tuple[BalanceStatementLine, ...]
    held_at_close: tuple[HeldAtClose, ...]
    generated_at: datetime
    final: bool
    digest: str

    @property
    def total_held(self) -> int:
        return sum(h.amount for h in self.held_at_close)


def canonical(
    subject: str,
    subject_id: str,
    currency: str,
    period: StatementPeriod,
    opening: int,
    closing: int,
    lines: tuple[BalanceStatementLine, ...],
) -> bytes:
    """The statement's figures as canonical JSON (sorted keys, no spaces, times in UTC ISO
    8601 with microseconds): what ``digest`` hashes."""
    doc = {
        "subject": subject,
        "id": subject_id,
        "currency": currency,
        "from": period.from_date.isoformat(),
        "to": period.to_date.isoformat(),
        "time_zone": period.time_zone,
        "opening": opening,
        "closing": closing,
        "lines": [
            {
                "ledger_entry_id": str(line.ledger_entry_id),
                "at": line.at.astimezone(UTC).isoformat(timespec="microseconds"),
                "kind": str(line.kind),
                "reference": line.reference,
                "amount": line.amount,
                "balance": line.balance,
            }
            for line in lines
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------- kinds and references


def seller_entry_kind(
    external_id: str | None, amount: int, seller_id: str
) -> tuple[StatementKind, str] | None:
    """The kind and reference of a ledger transaction on a seller's account, from its external
    id (which never changes, unlike metadata), as the marketplace's writes name them; None: not
    one of them (an adjustment). Statements and payout items read kinds here."""
    if external_id is None:
        return None
    prefix, _, rest = external_id.partition(":")
    if not rest:
        return None
    # ``<seller>/<order>`` (earnings booked before 0006: ``earning:<order>``).
    order = rest.removeprefix(f"{seller_id}/")
    if prefix == "earning":
        return StatementKind.EARNING, order
    if prefix == "rebook":
        return StatementKind.EARNING, rest.partition(":")[2].removeprefix(f"{seller_id}/")
    if prefix == "refund":
        return StatementKind.REFUND, rest
    if prefix == "dispute":
        return StatementKind.CHARGEBACK, rest
    if prefix == "reserve":
        return StatementKind.RESERVE, order
    if prefix == "payout":
        if rest.endswith(":return"):
            return StatementKind.PAYOUT_RETURNED, rest.removesuffix(":return")
        return StatementKind.PAYOUT, rest
    return None


def _wallet_kind(
    external_id: str | None, amount: int, wallet_id: str
) -> tuple[StatementKind, str] | None:
    if external_id is None:
        return None
    prefix, _, rest = external_id.partition(":")
    if not rest:
        return None
    if prefix == "wallet-top-up":
        return StatementKind.TOP_UP, rest
    if prefix == "wallet-spend":
        return StatementKind.SPEND, rest
    if prefix == "wallet-refund":
        return StatementKind.SPEND_REFUND, rest
    if prefix == "wallet-transfer":
        return (StatementKind.TRANSFER_IN if amount > 0 else StatementKind.TRANSFER_OUT), rest
    if prefix == "wallet-expiry":
        return StatementKind.EXPIRY, rest.rpartition(":")[0] or rest
    return None


_Classify = Callable[[str | None, int], tuple[StatementKind, str] | None]


def _classified(
    classify: _Classify, external_id: str | None, amount: int, transaction_id: uuid.UUID
) -> tuple[StatementKind, str]:
    """The kind and reference; an adjustment's reference is its external id, else its ledger
    transaction's id."""
    found = classify(external_id, amount)
    if found is not None:
        return found
    return StatementKind.ADJUSTMENT, external_id or str(transaction_id)


def _line(classify: _Classify, line: StatementLine) -> BalanceStatementLine:
    kind, reference = _classified(classify, line.external_id, line.amount, line.transaction_id)
    return BalanceStatementLine(
        kind=kind,
        reference=reference,
        amount=line.amount,
        balance=line.balance,
        at=line.statement_at,
        effective_at=line.effective_at,
        description=line.description,
        ledger_entry_id=line.entry_id,
        ledger_transaction_id=line.transaction_id,
    )


def _held(classify: _Classify, held: HeldEntry) -> HeldAtClose:
    kind, reference = _classified(classify, held.external_id, held.amount, held.transaction_id)
    return HeldAtClose(
        kind=kind,
        reference=reference,
        amount=held.amount,
        since=held.created_at,
        description=held.description,
        ledger_entry_id=held.entry_id,
        ledger_transaction_id=held.transaction_id,
    )


class Statements(OnMarketplace):
    """Statements of sellers and wallets, on a ``Marketplace``. Stateless."""

    def seller_statement(
        self,
        conn: Connection,
        seller_id: str,
        period: StatementPeriod,
        *,
        max_lines: int = MAX_LINES,
    ) -> BalanceStatement:
        """The seller's statement for ``period``. Raises ``SellerNotFound``,
        ``StatementTooLarge`` (ask a shorter period)."""
        seller = self.marketplace.get_seller(conn, seller_id)
        account = self.ledger.account_statement(
            conn, seller.ledger_account_id, period.start, period.end, max_lines=max_lines
        )
        return _statement(
            _Subject("seller", seller.id, seller.name, seller.currency, seller.currency_exponent),
            period,
            account,
            lambda external_id, amount: seller_entry_kind(external_id, amount, seller.id),
        )

    def wallet_statement(
        self,
        conn: Connection,
        wallet_id: str,
        period: StatementPeriod,
        *,
        max_lines: int = MAX_LINES,
    ) -> BalanceStatement:
        """The wallet's statement for ``period``. Raises ``WalletNotFound``,
        ``StatementTooLarge``."""
        wallet = self.marketplace.get_wallet(conn, wallet_id)
        account = self.ledger.account_statement(
            conn, wallet.ledger_account_id, period.start, period.end, max_lines=max_lines
        )
        return _statement(
            _Subject("wallet", wallet.id, wallet.name, wallet.currency, wallet.currency_exponent),
            period,
            account,
            lambda external_id, amount: _wallet_kind(external_id, amount, wallet.id),
        )


@dataclass(frozen=True, slots=True)
class _Subject:
    kind: str
    id: str
    name: str
    currency: str
    exponent: int


def _statement(
    subject: _Subject, period: StatementPeriod, account: AccountStatement, classify: _Classify
) -> BalanceStatement:
    lines = tuple(_line(classify, line) for line in account.lines)
    figures = canonical(
        subject.kind, subject.id, subject.currency, period, account.opening, account.closing, lines
    )
    return BalanceStatement(
        subject=subject.kind,
        id=subject.id,
        name=subject.name,
        currency=subject.currency,
        currency_exponent=subject.exponent,
        period=period,
        opening=account.opening,
        closing=account.closing,
        lines=lines,
        held_at_close=tuple(_held(classify, h) for h in account.held_at_close),
        generated_at=account.generated_at,
        final=account.final,
        digest=hashlib.sha256(figures).hexdigest(),
    )
