"""One database transaction per activity, with domain errors turned into non-retryable
``ApplicationError``s (type = the error's stable code). Anything else (a lost connection, a
deadlock, a timeout) propagates and Temporal retries the activity, which is safe because every
marketplace write is idempotent."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ledger_core import LedgerError, translate_database_error

T = TypeVar("T")


def business_error(exc: LedgerError) -> ApplicationError:
    details = {
        "code": exc.code,
        "message": exc.message,
        **{k: str(v) for k, v in exc.details.items()},
    }
    # A business answer (insufficient balance, unknown seller, ...), not a platform failure: benign,
    # so the SDK logs it at DEBUG without a traceback and does not count it as a failed task.
    return ApplicationError(
        exc.message,
        details,
        type=exc.code,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


def in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a database transaction committed on success (the commit runs the
    ledger's deferred checks, whose failures are business errors too)."""
    try:
        with engine.begin() as conn:
            return work(conn)
    except LedgerError as exc:
        raise business_error(exc) from exc
    except DBAPIError as exc:
        domain = translate_database_error(exc)
        if domain is None:
            raise
        raise business_error(domain) from exc
