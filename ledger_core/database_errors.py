"""The database's own checks (functions and triggers of the migrations) raise SQLSTATEs; this
turns them back into the ledger's domain errors."""

from __future__ import annotations

import json

import psycopg

from ledger_core import errors
from ledger_core.checks import MAX_AMOUNT

# SQLSTATEs raised by the schema's functions and triggers (see the 0001 migration).
SQLSTATE_CONDITION_FAILED = "LC001"
SQLSTATE_IMMUTABLE = "LC002"
SQLSTATE_ARCHIVED = "LC003"
SQLSTATE_INVALID_TRANSITION = "LC004"
SQLSTATE_UNBALANCED = "LC005"
SQLSTATE_OUT_OF_RANGE = "22003"  # a total beyond BIGINT
SQLSTATE_FOREIGN_KEY = "23503"  # also raised by the entry trigger for a missing reference


def translate_database_error(exc: BaseException) -> errors.LedgerError | None:
    """The domain error behind a database error raised by the schema's own checks, if any.

    Callers that commit (API, activities) use it, since some checks run at commit time.
    """
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, psycopg.Error) or orig.diag is None:
        return None
    state = orig.sqlstate
    message = orig.diag.message_primary or str(orig)
    if state == SQLSTATE_CONDITION_FAILED:
        detail = json.loads(orig.diag.message_detail or "{}")
        return errors.BalanceConditionFailed(message, **detail)
    if state == SQLSTATE_UNBALANCED:
        return errors.Unbalanced(message)
    if state == SQLSTATE_INVALID_TRANSITION:
        return errors.InvalidStateTransition(message)
    if state in (SQLSTATE_IMMUTABLE, SQLSTATE_ARCHIVED):
        return errors.ImmutableRecord(message)
    if state == SQLSTATE_OUT_OF_RANGE:
        return errors.ValidationFailed(
            f"an account's running total would exceed the maximum of {MAX_AMOUNT} minor units"
        )
    if state == SQLSTATE_FOREIGN_KEY:
        return errors.NotFound(message)
    return None
