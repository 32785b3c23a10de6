"""Domain errors. Each has a stable ``code``; no HTTP here (the API maps codes to statuses)."""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base of every ledger domain error."""

    code = "ledger_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(LedgerError):
    """The request itself is malformed (amounts, entry count, directions, ...)."""

    code = "validation_failed"


class Unbalanced(LedgerError):
    code = "unbalanced_transaction"


class CurrencyMismatch(LedgerError):
    """Accounts of another ledger or currency than the transaction's ledger."""

    code = "currency_mismatch"


class NotFound(LedgerError):
    code = "not_found"


class InvalidStateTransition(LedgerError):
    code = "invalid_state_transition"


class BalanceConditionFailed(LedgerError):
    """A balance condition or an expected lock_version did not hold; nothing was written."""

    code = "insufficient_balance"


class IdempotencyConflict(LedgerError):
    """The external_id exists with a different request."""

    code = "idempotency_conflict"


class AlreadyReversed(LedgerError):
    code = "already_reversed"


class ImmutableRecord(LedgerError):
    code = "immutable"


class StatementTooLarge(ValidationFailed):
    """A statement would hold more lines than a read may load: ask a shorter period."""

    code = "statement_too_large"
