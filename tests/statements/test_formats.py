"""Amounts with the currency's exponent, the choice of format by ``Accept``, CSV cells that are
never formulas, and PDF text beyond what its fonts cover."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader

from api.problems import Problem
from api.statement_formats import CSV, JSON, PDF, format_amount, negotiate, to_csv, to_pdf
from marketplace.statements import (
    BalanceStatement,
    BalanceStatementLine,
    StatementKind,
    statement_period,
)


@pytest.mark.parametrize(
    ("amount", "exponent", "text"),
    [
        (0, 2, "0.00"),
        (-5, 2, "-0.05"),
        (123_456, 2, "1234.56"),
        (-123_456, 2, "-1234.56"),
        (1_500, 0, "1500"),  # JPY
        (-1_234, 3, "-1.234"),  # BHD
        (9_223_372_036_854_775_807, 2, "92233720368547758.07"),
    ],
)
def test_format_amount(amount: int, exponent: int, text: str) -> None:
    assert format_amount(amount, exponent) == text


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/*", CSV),
        ("TEXT/CSV", CSV),
        ("text/csv; charset=utf-8", CSV),
        ("application/pdf, text/csv", PDF),
        ("text/csv;q=0.4, application/pdf;q=0.8", PDF),
        ("image/png, application/json;q=0.1", JSON),
        ("application/pdf;q=0, */*;q=0.5", JSON),
    ],
)
def test_negotiate(accept: str | None, chosen: str) -> None:
    assert negotiate(accept) == chosen


@pytest.mark.parametrize("accept", ["text/html", "application/xml, image/*", "application/pdf;q=0"])
def test_negotiate_refuses(accept: str) -> None:
    with pytest.raises(Problem) as problem:
        negotiate(accept)
    assert problem.value.status == 406


def synthetic(name: str, reference: str, lines: int = 1) -> BalanceStatement:
    period = statement_period(date(2026, 1, 1), date(2026, 1, 31), "Asia/Tokyo")
    made = tuple(
        BalanceStatementLine(
            kind=StatementKind.ADJUSTMENT,
            reference=reference,
            amount=-1_500,
            balance=-1_500 * (n + 1),
            at=period.start + timedelta(hours=n),
            effective_at=period.start,
            description="=1+1",
            ledger_entry_id=uuid.uuid4(),
            ledger_transaction_id=uuid.uuid4(),
        )
        for n in range(lines)
    )
    return BalanceStatement(
        subject="seller",
        id="s-1",
        name=name,
        currency="JPY",
        currency_exponent=0,
        period=period,
        opening=0,
        closing=-1_500 * lines,
        lines=made,
        held_at_close=(),
        generated_at=datetime.now(UTC),
        final=True,
        digest="0" * 64,
    )


def test_a_csv_cell_is_never_a_formula() -> None:
    text = to_csv(synthetic("Shop", '=HYPERLINK("http://evil")'))
    [line] = [row for row in csv.DictReader(io.StringIO(text)) if row["section"] == "line"]
    assert line["reference"] == '\'=HYPERLINK("http://evil")'
    assert line["description"] == "'=1+1"
    assert line["amount"] == "-1500"  # a number, not text: JPY has no decimals
    assert line["at"] == "2026-01-01T00:00:00+09:00"  # in the statement's time zone


def test_a_pdf_prints_what_its_fonts_cannot_as_question_marks() -> None:
    pdf = to_pdf(synthetic("Boulangerie Zoë 東京", "order-" + "x" * 300, lines=3))
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Boulangerie Zoë ?? (s-1)" in text
    assert "order-xxx" in text and "..." in text and "x" * 300 not in text
    assert "Closing balance -4500 JPY" in text
