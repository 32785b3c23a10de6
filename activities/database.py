"""The activity classes' base (the worker's engine and marketplace), and one database
transaction per activity, with domain errors turned into non-retryable
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
from marketplace import Marketplace

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


class DatabaseActivities:
    """What every activity class that writes through the marketplace is built with, once per
    worker: its database engine and the marketplace (shared, so ledger writes are counted)."""

    def __init__(self, engine: Engine, marketplace: Marketplace | None = None) -> None:
        self.engine = engine
        self.marketplace = marketplace or Marketplace()
