"""A double-entry application ledger on PostgreSQL: the single source of truth for money.

Knows nothing about HTTP or Temporal. See ``LedgerService`` for the operations and DESIGN.md for
the balance semantics (Modern Treasury's pending / posted / available).
"""

from ledger_core.errors import (
    AlreadyReversed,
    BalanceConditionFailed,
    CurrencyMismatch,
    IdempotencyConflict,
    ImmutableRecord,
    InvalidStateTransition,
    LedgerError,
    NotFound,
    Unbalanced,
    ValidationFailed,
)
from ledger_core.ledger import LedgerService, translate_database_error
from ledger_core.types import (
    Balance,
    BalanceCondition,
    BalanceKind,
    Balances,
    ConditionOp,
    Direction,
    Ledger,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    NewEntry,
    NewLedgerTransaction,
    NormalBalance,
    Page,
    RunningTotals,
    TransactionStatus,
)

__all__ = [
    "AlreadyReversed",
    "Balance",
    "BalanceCondition",
    "BalanceConditionFailed",
    "BalanceKind",
    "Balances",
    "ConditionOp",
    "CurrencyMismatch",
    "Direction",
    "IdempotencyConflict",
    "ImmutableRecord",
    "InvalidStateTransition",
    "Ledger",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerError",
    "LedgerService",
    "LedgerTransaction",
    "NewEntry",
    "NewLedgerTransaction",
    "NormalBalance",
    "NotFound",
    "Page",
    "RunningTotals",
    "TransactionStatus",
    "Unbalanced",
    "ValidationFailed",
    "translate_database_error",
]
