"""Amounts with the currency's exponent, and the choice of format by ``Accept``."""

from __future__ import annotations

import pytest

from api.problems import Problem
from api.statement_formats import CSV, JSON, PDF, format_amount, negotiate


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
