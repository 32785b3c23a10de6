"""A statement (``marketplace.statements.BalanceStatement``) as the client asked for it: JSON (the
default), CSV (``Accept: text/csv``) or a PDF for sending to the seller or the wallet's owner
(``Accept: application/pdf``, made with fpdf2). All three carry the same figures; CSV and PDF
show amounts as decimals with the currency's exponent (``format_amount``, integer arithmetic) and
times in the statement's time zone.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from fpdf import FPDF

from api.problems import Problem
from marketplace.statements import BalanceStatement

JSON = "application/json"
CSV = "text/csv"
PDF = "application/pdf"
_OFFERED = (JSON, CSV, PDF)
_WILDCARDS = {"*/*": JSON, "application/*": JSON, "text/*": CSV}


def negotiate(accept: str | None) -> str:
    """The media type to answer with: the acceptable one with the highest quality (the first
    listed on a tie); JSON without an ``Accept``. None acceptable: a 406 problem."""
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        offered = media if media in _OFFERED else _WILDCARDS.get(media)
        if offered is None or not quality > 0:
            continue
        if best is None or quality > best[0]:
            best = (quality, position, offered)
    if best is None:
        raise Problem(
            406,
            "not_acceptable",
            f"a statement is available as {', '.join(_OFFERED)}; the Accept header asks for "
            "none of them",
        )
    return best[2]


def format_amount(amount: int, exponent: int) -> str:
    """Minor units as a decimal in major units: ``-123456, 2`` -> ``-1234.56``."""
    sign = "-" if amount < 0 else ""
    if exponent == 0:
        return f"{sign}{abs(amount)}"
    major, minor = divmod(abs(amount), 10**exponent)
    return f"{sign}{major}.{minor:0{exponent}d}"


def filename(statement: BalanceStatement, extension: str) -> str:
    period = statement.period
    return f"statement-{statement.id}-{period.from_date}-{period.to_date}.{extension}"


def _local(statement: BalanceStatement, at: datetime) -> datetime:
    return at.astimezone(ZoneInfo(statement.period.time_zone))


# ---------------------------------------------------------------- CSV

CSV_COLUMNS = (
    "section",
    "at",
    "kind",
    "reference",
    "description",
    "currency",
    "amount",
    "balance",
    "ledger_entry_id",
    "ledger_transaction_id",
)


def to_csv(statement: BalanceStatement) -> str:
    """One row per figure, ``section`` saying which: ``opening``, each ``line``, ``closing``, then
    each pending debit ``held`` at the close (outside the arithmetic: opening + the lines'
    amounts = closing)."""
    exp, cur = statement.currency_exponent, statement.currency
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def row(
        section: str,
        at: datetime,
        kind: str = "",
        reference: str = "",
        description: str = "",
        amount: str = "",
        balance: str = "",
        entry: object = "",
        transaction: object = "",
    ) -> None:
        writer.writerow(
            [
                section,
                _local(statement, at).isoformat(),
                kind,
                _cell(reference),
                _cell(description),
                cur,
                amount,
                balance,
                str(entry),
                str(transaction),
            ]
        )

    row("opening", statement.period.start, balance=format_amount(statement.opening, exp))
    for line in statement.lines:
        row(
            "line",
            line.at,
            str(line.kind),
            line.reference,
            line.description or "",
            format_amount(line.amount, exp),
            format_amount(line.balance, exp),
            line.ledger_entry_id,
            line.ledger_transaction_id,
        )
    row("closing", statement.period.end, balance=format_amount(statement.closing, exp))
    for held in statement.held_at_close:
        row(
            "held",
            held.since,
            str(held.kind),
            held.reference,
            held.description or "",
            format_amount(held.amount, exp),
            "",
            held.ledger_entry_id,
            held.ledger_transaction_id,
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# ---------------------------------------------------------------- PDF

# The lines' table: (title, width in mm, right-aligned). 190 mm: A4 less 10 mm margins.
_COLUMNS = (
    ("Date", 36.0, False),
    ("Kind", 30.0, False),
    ("Reference", 64.0, False),
    ("Amount", 30.0, True),
    ("Balance", 30.0, True),
)
_ROW = 5.5  # mm
_KINDS = {
    "payout_returned": "payout returned",
    "spend_refund": "spend refund",
    "top_up": "top-up",
    "transfer_in": "transfer in",
    "transfer_out": "transfer out",
}


class _StatementPDF(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")


def _latin1(text: str) -> str:
    """The core PDF fonts cover Latin-1; anything else shows as ``?``."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """``text`` in Latin-1, cut to ``width`` (mm) with ``...`` if it is wider."""
    text = _latin1(text)
    room = width - 2
    # No character of the core fonts is wider than 1.1 em (``font_size``, in mm): a short text
    # fits without measuring it.
    if len(text) * pdf.font_size * 1.1 <= room or pdf.get_string_width(text) <= room:
        return text
    fits, too_long = 0, len(text)  # the longest prefix that fits with "...", by bisection
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if pdf.get_string_width(text[:middle] + "...") <= room:
            fits = middle
        else:
            too_long = middle
    return text[:fits] + "..."


class _Table:
    """Rows written with ``FPDF.text`` (fpdf2's ``cell`` costs a tenth of a millisecond each,
    too slow for 10,000 lines in a request's time budget), a header on every page."""

    def __init__(self, pdf: FPDF, titles: tuple[str, ...]) -> None:
        self.pdf = pdf
        self.titles = titles
        self.header()

    def header(self) -> None:
        self.pdf.set_font("Helvetica", style="B", size=9)
        self._write(self.titles)
        y = self.pdf.get_y()
        self.pdf.line(self.pdf.l_margin, y, self.pdf.l_margin + 190, y)
        self.pdf.set_y(y + 1)
        self.pdf.set_font("Helvetica", size=9)

    def row(self, values: tuple[str, ...]) -> None:
        if self.pdf.will_page_break(_ROW):
            self.pdf.add_page()
            self.header()
        self._write(values)

    def _write(self, values: tuple[str, ...]) -> None:
        pdf = self.pdf
        x, y = pdf.l_margin, pdf.get_y()
        baseline = y + _ROW * 0.7
        for value, (_, width, right) in zip(values, _COLUMNS, strict=True):
            if right:  # an amount: measured anyway, to align it
                text = _latin1(value)
                measured = pdf.get_string_width(text)
                if measured > width - 2:
                    text = _fit(pdf, text, width)
                    measured = pdf.get_string_width(text)
                pdf.text(x + width - 1 - measured, baseline, text)
            else:
                pdf.text(x + 1, baseline, _fit(pdf, value, width))
            x += width
        pdf.set_y(y + _ROW)


def to_pdf(statement: BalanceStatement) -> bytes:
    """The statement as a PDF: title, holder's name and id, currency, period, opening balance,
    the lines (date, kind, reference, amount, running balance), closing balance, what is held
    back at the close, the digest, and page numbers."""
    exp, cur = statement.currency_exponent, statement.currency
    period = statement.period
    pdf = _StatementPDF(format="A4")
    pdf.set_margins(10, 12, 10)
    pdf.set_title(_latin1(f"Statement {statement.id} {period.from_date} to {period.to_date}"))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    holder = "Seller" if statement.subject == "seller" else "Wallet"
    pdf.cell(0, 10, f"{holder} statement", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for label, value in (
        (holder, f"{statement.name} ({statement.id})"),
        ("Currency", cur),
        ("Period", f"{period.from_date} to {period.to_date} ({period.time_zone})"),
        ("Generated", _local(statement, statement.generated_at).strftime("%Y-%m-%d %H:%M:%S %Z")),
    ):
        pdf.cell(28, 6, f"{label}:")
        pdf.cell(0, 6, _fit(pdf, value, 160), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _balance_row(pdf, "Opening balance", format_amount(statement.opening, exp), cur)
    pdf.ln(2)
    table = _Table(pdf, tuple(title for title, _, _ in _COLUMNS))
    for line in statement.lines:
        table.row(
            (
                _local(statement, line.at).strftime("%Y-%m-%d %H:%M"),
                _KINDS.get(str(line.kind), str(line.kind)),
                line.reference,
                format_amount(line.amount, exp),
                format_amount(line.balance, exp),
            )
        )
    if not statement.lines:
        pdf.set_font("Helvetica", style="I", size=9)
        pdf.cell(0, 6, "No posted entries in this period.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    _balance_row(pdf, "Closing balance", format_amount(statement.closing, exp), cur)
    if statement.held_at_close:
        pdf.ln(4)
        pdf.set_font("Helvetica", style="B", size=10)
        pdf.cell(0, 6, "Held back at the close (not in the balance above)", new_x="LMARGIN")
        pdf.ln(6)
        held = _Table(pdf, ("Since", "Kind", "Reference", "Amount", ""))
        for item in statement.held_at_close:
            held.row(
                (
                    _local(statement, item.since).strftime("%Y-%m-%d %H:%M"),
                    _KINDS.get(str(item.kind), str(item.kind)),
                    item.reference,
                    format_amount(item.amount, exp),
                    "",
                )
            )
    pdf.ln(4)
    pdf.set_font("Helvetica", size=7)
    pdf.multi_cell(0, 4, f"SHA-256 of the statement's figures: {statement.digest}")
    return bytes(pdf.output())


def _balance_row(pdf: FPDF, label: str, amount: str, currency: str) -> None:
    if pdf.will_page_break(7):
        pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=11)
    pdf.cell(130, 7, label)
    pdf.cell(60, 7, f"{amount} {currency}", align="R", new_x="LMARGIN", new_y="NEXT")
