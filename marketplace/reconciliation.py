"""Reconciliation of bank statements against the payouts: which statement lines are payouts the
platform paid, which are not, and which paid payouts the statement does not show.

The statement is CSV (UTF-8, comma-separated, a header line first)::

    date,amount,currency,reference
    2027-03-01,2500,USD,po_123

* ``date``: the value date, ``YYYY-MM-DD``.
* ``amount``: what left the account for that payout, an **integer in minor units** (2500 is
  25.00 USD); debit notation (``-2500``) is accepted as the same. Decimal amounts (``25.00``) are
  refused for the whole file: the format is minor units, and guessing an exponent is how money
  goes missing.
* ``currency``: ISO 4217 code. ``reference``: the payout id.

Each line gets a result:

=======================  ==================================================================
matched                  a paid payout (status paid, or returned after it was paid) with that
                         id, the same amount and currency
amount_mismatch          that payout, another amount (``expected_amount`` says which)
currency_mismatch        that payout, another currency
unmatched                no payout with that id, or one that was never paid (pending,
                         processing, failed, cancelled: ``detail`` says which)
duplicate                a further line naming a payout an earlier line already named
invalid                  a line whose values cannot be read (bad date, amount, currency,
                         empty reference); ``detail`` says what
missing_from_statement   a paid payout whose paid date (UTC) falls within the statement's date
                         range (its first to its last valid line's date) that no line names;
                         stored with negative line numbers
=======================  ==================================================================

A file that is not such a CSV at all (not UTF-8, no or another header, a line with another
number of fields, decimal amounts, no lines) raises ``StatementUnreadable`` with the line number,
and nothing is stored. Otherwise the report is kept (``reconciliation_statements`` and
``reconciliation_lines``) and returned. The caller owns the database transaction.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.engine import Row

from ledger_core import ValidationFailed
from ledger_core.currencies import resolve_exponent
from ledger_core.ids import uuid7
from marketplace.errors import (
    StatementNotFound,
    StatementUnreadable,
)
from marketplace.payout_items import items_url
from marketplace.rows import from_row, row_by_id
from marketplace.tables import (
    payouts,
    reconciliation_lines,
    reconciliation_statements,
    sellers,
)

HEADER = ("date", "amount", "currency", "reference")
MAX_LINES = 100_000
PAID_STATUSES = ("paid", "returned")
RESULTS = (
    "matched",
    "amount_mismatch",
    "currency_mismatch",
    "unmatched",
    "duplicate",
    "invalid",
    "missing_from_statement",
)
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_DECIMAL = re.compile(r"^-?[0-9]*[.,][0-9]+$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True, slots=True)
class ReconciliationLine:
    line_number: int
    """The line in the file (1 is the header); negative for payouts missing from it."""
    result: str
    value_date: date | None = None
    amount: int | None = None
    currency: str | None = None
    reference: str | None = None
    payout_id: str | None = None
    expected_amount: int | None = None
    detail: str | None = None
    items_url: str | None = None
    """Matched: what the payout paid for (``GET /v1/payouts/{id}/items``)."""
    item_count: int | None = None
    """Matched: the number of its lines (None: made before payouts were itemized)."""


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    id: str
    filename: str | None
    content_sha256: str
    line_count: int
    period_start: date | None
    period_end: date | None
    counts: dict[str, int]
    lines: list[ReconciliationLine] = field(default_factory=list)
    created_at: datetime | None = None

    @property
    def all_matched(self) -> bool:
        """True when every line matched and no paid payout is missing."""
        return all(n == 0 for r, n in self.counts.items() if r != "matched")


@dataclass(frozen=True, slots=True)
class _Parsed:
    line_number: int
    value_date: date | None
    amount: int | None
    currency: str | None
    reference: str | None
    error: str | None


def _unreadable(line: int, message: str) -> StatementUnreadable:
    return StatementUnreadable(f"line {line}: {message}", field="file", line=line)


def parse_statement(content: bytes) -> list[_Parsed]:
    """The statement's lines (unreadable values marked, not raised); raises
    ``StatementUnreadable`` for a file that is not a statement CSV."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise _unreadable(line, "the file is not UTF-8 text") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    parsed: list[_Parsed] = []
    try:
        header = next(reader, None)
        if header is None:
            raise _unreadable(1, "the file is empty; expected the header " + ",".join(HEADER))
        if tuple(h.strip().lower() for h in header) != HEADER:
            raise _unreadable(
                1, f"the header must be {','.join(HEADER)} (found {','.join(header)!r})"
            )
        for row in reader:
            number = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines
            if len(row) != len(HEADER):
                raise _unreadable(
                    number, f"expected {len(HEADER)} fields ({','.join(HEADER)}), found {len(row)}"
                )
            if len(parsed) >= MAX_LINES:
                raise _unreadable(number, f"a statement holds at most {MAX_LINES} lines")
            parsed.append(_parse_row(number, [c.strip() for c in row]))
    except csv.Error as exc:
        raise _unreadable(reader.line_num, f"not valid CSV ({exc})") from exc
    if not parsed:
        raise _unreadable(1, "the statement has no lines after the header")
    return parsed


def _parse_row(number: int, row: list[str]) -> _Parsed:
    raw_date, raw_amount, raw_currency, reference = row
    errors: list[str] = []
    value_date: date | None = None
    amount: int | None = None
    currency: str | None = raw_currency.upper() or None
    if _DECIMAL.match(raw_amount):
        raise _unreadable(
            number,
            f"amount {raw_amount!r} is a decimal; amounts are integers in minor units "
            "(2500 for 25.00)",
        )
    if _INTEGER.match(raw_amount) and abs(int(raw_amount)) < 2**63:
        amount = abs(int(raw_amount))
        if amount == 0:
            errors.append("amount must not be zero")
    else:
        errors.append(f"amount {raw_amount!r} is not an integer of minor units")
    try:
        if not _DATE.match(raw_date):
            raise ValueError(raw_date)
        value_date = date.fromisoformat(raw_date)
    except ValueError:
        errors.append(f"date {raw_date!r} is not a date (YYYY-MM-DD)")
    try:
        if currency is None:
            raise ValidationFailed("empty")
        resolve_exponent(currency, None)
    except ValidationFailed:
        errors.append(f"currency {raw_currency!r} is not an ISO 4217 code")
        currency = raw_currency or None
    if not reference:
        errors.append("reference (the payout id) is empty")
    return _Parsed(
        number, value_date, amount, currency, reference or None, "; ".join(errors) or None
    )


def reconcile_statement(
    conn: Connection, content: bytes, *, filename: str | None = None
) -> ReconciliationReport:
    """Parse ``content``, match it against the payouts, store and return the report."""
    parsed = parse_statement(content)
    references = {p.reference for p in parsed if p.error is None and p.reference}
    # A bank statement is live money: test-mode payouts (paid by the simulated bank) are
    # neither matched nor missing from it.
    live_payouts = select(payouts).join(sellers, sellers.c.id == payouts.c.seller_id)
    live_payouts = live_payouts.where(sellers.c.livemode.is_(True))
    by_id = {
        row.id: row
        for row in conn.execute(live_payouts.where(payouts.c.id.in_(sorted(references)))).all()
    }
    lines: list[ReconciliationLine] = []
    seen: dict[str, int] = {}
    for p in parsed:
        base: dict[str, Any] = {
            "line_number": p.line_number,
            "value_date": p.value_date,
            "amount": p.amount,
            "currency": p.currency,
            "reference": p.reference,
        }
        if p.error is not None:
            lines.append(ReconciliationLine(result="invalid", detail=p.error, **base))
            continue
        assert p.reference is not None
        payout = by_id.get(p.reference)
        if p.reference in seen:
            lines.append(
                ReconciliationLine(
                    result="duplicate",
                    payout_id=payout.id if payout is not None else None,
                    detail=f"line {seen[p.reference]} already names {p.reference!r}",
                    **base,
                )
            )
            continue
        seen[p.reference] = p.line_number
        if payout is None:
            lines.append(
                ReconciliationLine(result="unmatched", detail="no payout with this id", **base)
            )
            continue
        result, detail = _compare(payout, p)
        lines.append(
            ReconciliationLine(
                result=result,
                payout_id=payout.id,
                expected_amount=payout.amount,
                detail=detail,
                **base,
            )
        )

    dates = [p.value_date for p in parsed if p.value_date is not None and p.error is None]
    start, end = (min(dates), max(dates)) if dates else (None, None)
    if start is not None and end is not None:
        missing = conn.execute(
            live_payouts.where(
                and_(
                    payouts.c.status.in_(PAID_STATUSES),
                    payouts.c.paid_at >= datetime.combine(start, time(), tzinfo=UTC),
                    payouts.c.paid_at
                    < datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC),
                    payouts.c.id.not_in(sorted(seen)),
                )
            ).order_by(payouts.c.paid_at, payouts.c.id)
        ).all()
        for n, payout in enumerate(missing, start=1):
            lines.append(
                ReconciliationLine(
                    line_number=-n,
                    result="missing_from_statement",
                    value_date=payout.paid_at.astimezone(UTC).date(),
                    currency=payout.currency,
                    reference=payout.id,
                    payout_id=payout.id,
                    expected_amount=payout.amount,
                    detail=f"paid {payout.paid_at.astimezone(UTC).isoformat()}, not on the "
                    "statement",
                )
            )

    counts = Counter(line.result for line in lines)
    report = ReconciliationReport(
        id=f"stmt_{uuid7().hex}",
        filename=filename,
        content_sha256=hashlib.sha256(content).hexdigest(),
        line_count=len(parsed),
        period_start=start,
        period_end=end,
        counts={r: counts.get(r, 0) for r in RESULTS},
        lines=lines,
    )
    created_at = conn.execute(
        reconciliation_statements.insert()
        .values(
            id=report.id,
            filename=filename,
            content_sha256=report.content_sha256,
            line_count=report.line_count,
            summary=_summary(report),
            created_at=func.now(),
        )
        .returning(reconciliation_statements.c.created_at)
    ).scalar_one()
    conn.execute(
        reconciliation_lines.insert(),
        [
            {
                "statement_id": report.id,
                "line_number": line.line_number,
                "value_date": line.value_date,
                "amount": line.amount,
                "currency": line.currency,
                "reference": line.reference,
                "result": line.result,
                "payout_id": line.payout_id,
                "expected_amount": line.expected_amount,
                "detail": line.detail,
            }
            for line in lines
        ],
    )
    return dataclasses.replace(report, created_at=created_at, lines=_with_items(conn, lines))


def _compare(payout: Row[Any], line: _Parsed) -> tuple[str, str | None]:
    """A statement line against the payout it names: its result and, unless matched, why."""
    if payout.status not in PAID_STATUSES:
        return "unmatched", f"the payout is {payout.status}, not paid"
    if payout.currency != line.currency:
        return "currency_mismatch", f"the payout is in {payout.currency}"
    if payout.amount != line.amount:
        return "amount_mismatch", f"the payout is {payout.amount}, the statement {line.amount}"
    return "matched", None


def _summary(report: ReconciliationReport) -> dict[str, Any]:
    return {
        "counts": report.counts,
        "period_start": report.period_start.isoformat() if report.period_start else None,
        "period_end": report.period_end.isoformat() if report.period_end else None,
        "all_matched": report.all_matched,
    }


def get_statement(conn: Connection, statement_id: str) -> ReconciliationReport:
    row = row_by_id(conn, reconciliation_statements, statement_id)
    if row is None:
        raise StatementNotFound(f"statement {statement_id!r} not found", resource="statement")
    line_rows = conn.execute(
        select(reconciliation_lines)
        .where(reconciliation_lines.c.statement_id == statement_id)
        .order_by(
            (reconciliation_lines.c.line_number < 0).asc(),
            func.abs(reconciliation_lines.c.line_number),
        )
    ).all()
    summary = row.summary
    return ReconciliationReport(
        id=row.id,
        filename=row.filename,
        content_sha256=row.content_sha256,
        line_count=row.line_count,
        period_start=date.fromisoformat(summary["period_start"])
        if summary.get("period_start")
        else None,
        period_end=date.fromisoformat(summary["period_end"]) if summary.get("period_end") else None,
        counts={r: int(summary["counts"].get(r, 0)) for r in RESULTS},
        lines=_with_items(
            conn,
            [from_row(ReconciliationLine, r, items_url=None, item_count=None) for r in line_rows],
        ),
        created_at=row.created_at,
    )


def _with_items(conn: Connection, lines: list[ReconciliationLine]) -> list[ReconciliationLine]:
    """The lines, each matched one linked to its payout's items (``marketplace.payout_items``),
    as the ``payout.paid`` event links them."""
    matched = sorted({ln.payout_id for ln in lines if ln.result == "matched" and ln.payout_id})
    if not matched:
        return lines
    counts = {
        row.id: row.item_count
        for row in conn.execute(
            select(payouts.c.id, payouts.c.item_count).where(payouts.c.id.in_(matched))
        ).all()
    }
    return [
        dataclasses.replace(
            ln, items_url=items_url(ln.payout_id), item_count=counts.get(ln.payout_id)
        )
        if ln.result == "matched" and ln.payout_id
        else ln
        for ln in lines
    ]


def format_report(report: ReconciliationReport) -> str:
    """The report as text, for the CLI: a summary, then every line that did not match."""
    out = [
        f"Statement {report.id}" + (f" ({report.filename})" if report.filename else ""),
        f"  lines: {report.line_count}, period: {report.period_start} .. {report.period_end}",
        "  " + ", ".join(f"{r}: {n}" for r, n in report.counts.items()),
    ]
    problems = [line for line in report.lines if line.result != "matched"]
    if not problems:
        out.append("All lines matched; no paid payout is missing.")
    else:
        out.append("")
        out.append(f"{'line':>6}  {'result':<22}  {'reference':<28}  {'amount':>12}  detail")
        for line in problems:
            where = str(line.line_number) if line.line_number > 0 else "-"
            amount = line.amount if line.amount is not None else line.expected_amount
            out.append(
                f"{where:>6}  {line.result:<22}  {(line.reference or ''):<28}  "
                f"{'' if amount is None else amount:>12}  {line.detail or ''}"
            )
    return "\n".join(out)
