"""A statement (``marketplace.statements.BalanceStatement``) as the client asked for it: JSON (the
default), CSV (``Accept: text/csv``) or a PDF for sending to the seller or the wallet's owner
(``Accept: application/pdf``, made with fpdf2). All three carry the same figures; CSV and PDF
show amounts as decimals with the currency's exponent (``format_amount``, integer arithmetic) and
times in the statement's time zone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
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
    start = _local(statement, statement.period.start).isoformat()
    end = _local(statement, statement.period.end).isoformat()
    writer.writerow(
        ["opening", start, "", "", "", cur, "", format_amount(statement.opening, exp), "", ""]
    )
    for line in statement.lines:
        writer.writerow(
            [
                "line",
                _local(statement, line.at).isoformat(),
                str(line.kind),
                _cell(line.reference),
                _cell(line.description or ""),
                cur,
                format_amount(line.amount, exp),
                format_amount(line.balance, exp),
                str(line.ledger_entry_id),
                str(line.ledger_transaction_id),
            ]
        )
    writer.writerow(
        ["closing", end, "", "", "", cur, "", format_amount(statement.closing, exp), "", ""]
    )
    for held in statement.held_at_close:
        writer.writerow(
            [
                "held",
                _local(statement, held.since).isoformat(),
                str(held.kind),
                _cell(held.reference),
                _cell(held.description or ""),
                cur,
                format_amount(held.amount, exp),
                "",
                str(held.ledger_entry_id),
                str(held.ledger_transaction_id),
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# ---------------------------------------------------------------- PDF

_COLUMNS = (
    ("Date", 38.0),
    ("Kind", 30.0),
    ("Reference", 62.0),
    ("Amount", 30.0),
    ("Balance", 30.0),
)
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
    text = _latin1(text)
    if pdf.get_string_width(text) <= width - 2:
        return text
    while text and pdf.get_string_width(text + "...") > width - 2:
        text = text[:-1]
    return text + "..."


def to_pdf(statement: BalanceStatement) -> bytes:
    """The statement as a PDF: title, holder's name and id, currency, period, opening balance,
    the lines (date, kind, reference, amount, running balance), closing balance, what is held
    back at the close, the digest, and page numbers."""
    exp, cur = statement.currency_exponent, statement.currency
    period = statement.period
    pdf = _StatementPDF(format="A4")
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
    _header(pdf)
    for line in statement.lines:
        if pdf.will_page_break(6):
            pdf.add_page()
            _header(pdf)
        _row(
            pdf,
            (
                _local(statement, line.at).strftime("%Y-%m-%d %H:%M"),
                _KINDS.get(str(line.kind), str(line.kind)),
                line.reference,
                format_amount(line.amount, exp),
                format_amount(line.balance, exp),
            ),
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
        _header(pdf, ("Since", "Kind", "Reference", "Amount", ""))
        for held in statement.held_at_close:
            if pdf.will_page_break(6):
                pdf.add_page()
            _row(
                pdf,
                (
                    _local(statement, held.since).strftime("%Y-%m-%d %H:%M"),
                    _KINDS.get(str(held.kind), str(held.kind)),
                    held.reference,
                    format_amount(held.amount, exp),
                    "",
                ),
            )
    pdf.ln(4)
    pdf.set_font("Helvetica", size=7)
    pdf.multi_cell(0, 4, f"SHA-256 of the statement's figures: {statement.digest}")
    return bytes(pdf.output())


def _balance_row(pdf: FPDF, label: str, amount: str, currency: str) -> None:
    pdf.set_font("Helvetica", style="B", size=11)
    pdf.cell(130, 7, label)
    pdf.cell(60, 7, f"{amount} {currency}", align="R", new_x="LMARGIN", new_y="NEXT")


def _header(pdf: FPDF, titles: Iterable[str] | None = None) -> None:
    pdf.set_font("Helvetica", style="B", size=9)
    names = list(titles) if titles is not None else [name for name, _ in _COLUMNS]
    for name, (_, width) in zip(names, _COLUMNS, strict=True):
        pdf.cell(width, 6, name, border="B", align="R" if name in ("Amount", "Balance") else "L")
    pdf.ln(6)
    pdf.set_font("Helvetica", size=9)


def _row(pdf: FPDF, values: tuple[str, str, str, str, str]) -> None:
    for index, (value, (_, width)) in enumerate(zip(values, _COLUMNS, strict=True)):
        pdf.cell(width, 6, _fit(pdf, value, width), align="R" if index >= 3 else "L")
    pdf.ln(6)
