"""A double-entry application ledger on PostgreSQL: the single source of truth for money.

What lives here: the schema (``schema``); ``LedgerService`` (``ledger``), its operations by
subject: ledgers and accounts (``accounts``), reads of transactions and entries (``reads``), the
write of one transaction (``writes``), an account's statement over a window (``statements``),
status changes, set-based writes and reversals
(``ledger``); the domain types (``types``), the domain errors with stable codes (``errors``) and
the database's own errors translated to them (``database_errors``); the checks, clock and page
helpers the domains on top share (``checks``), rows as types (``rows``); currencies, ids (UUIDv7)
and the statements deferred to the commit (``deferred``). See ``LedgerService`` for the
operations and docs/architecture.md for how the parts fit (balances follow Modern Treasury's
pending / posted / available).

What it may import: SQLAlchemy, psycopg and the standard library; nothing of the platform (no
api, workflows, activities, marketplace, server, observability) and no HTTP or Temporal (an
import-linter contract). The caller owns the database transaction; the ledger never commits.
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
    StatementTooLarge,
    Unbalanced,
    ValidationFailed,
)
from ledger_core.ledger import LedgerService, translate_database_error
from ledger_core.statements import AccountStatement, HeldEntry, StatementLine
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
    "AccountStatement",
    "AlreadyReversed",
    "Balance",
    "BalanceCondition",
    "BalanceConditionFailed",
    "BalanceKind",
    "Balances",
    "ConditionOp",
    "CurrencyMismatch",
    "Direction",
    "HeldEntry",
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
    "StatementLine",
    "StatementTooLarge",
    "TransactionStatus",
    "Unbalanced",
    "ValidationFailed",
    "translate_database_error",
]
