"""Checks of what callers pass in, and the clock, shared by the ledger and the packages built on it
(``marketplace`` imports them; nothing here imports beyond the standard library and the errors)."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger_core.errors import ValidationFailed

MAX_AMOUNT = 2**63 - 1
"""The largest amount in minor units (a PostgreSQL bigint)."""
MAX_PAGE = 1000
"""The longest page a list returns."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_aware(value: datetime | None, field: str) -> None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailed(f"{field} must include a time zone offset", field=field)


def check_amount(value: object, field: str, *, allow_zero: bool = False) -> int:
    # bool is an int in Python; a float is never an amount: minor units are integers.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{field} must be an integer number of minor units", field=field)
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_AMOUNT:
        raise ValidationFailed(
            f"{field} must be {'>= 0' if allow_zero else 'positive'} and at most {MAX_AMOUNT}",
            field=field,
        )
    return value
