"""Checks of what callers pass to the marketplace. The clock, amounts, aware
datetimes and the page size are the ledger's (``ledger_core.checks``), re-used as they are."""

from __future__ import annotations

import re

from ledger_core.checks import (
    MAX_AMOUNT,
    MAX_PAGE,
    check_amount,
    check_aware,
    check_limit,
    utc_now,
)
from ledger_core.errors import ValidationFailed

__all__ = [
    "MAX_AMOUNT",
    "MAX_PAGE",
    "check_amount",
    "check_amount_or_none",
    "check_aware",
    "check_id",
    "check_limit",
    "check_order_id",
    "utc_now",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def check_id(value: object, field: str) -> None:
    """An id the platform chooses: 1-128 letters, digits and ``_ . : -``."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValidationFailed(
            f"{field} must be 1-128 characters of letters, digits and _ . : - "
            "(starting with a letter or digit)",
            field=field,
        )


def check_order_id(value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 200 or not value.strip():
        raise ValidationFailed("order_id must be 1-200 characters", field="order_id")


def check_amount_or_none(value: object) -> None:
    """An optional amount (None: "all of it"), or a positive integer of minor units."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_AMOUNT
    ):
        raise ValidationFailed("amount must be a positive integer of minor units", field="amount")
