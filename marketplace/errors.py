"""Marketplace domain errors. Each subclasses the ledger error of the same kind (so a handler
that maps ``NotFound`` to 404 or ``IdempotencyConflict`` to 409 covers them) and has its own
stable ``code``."""

from __future__ import annotations

from ledger_core.errors import IdempotencyConflict, InvalidStateTransition, NotFound


class SellerNotFound(NotFound):
    code = "seller_not_found"


class SellerExists(IdempotencyConflict):
    """A seller with this id exists with other attributes (the same request returns it)."""

    code = "seller_exists"


class EarningNotFound(NotFound):
    code = "earning_not_found"


class EarningConflict(IdempotencyConflict):
    """The order id was booked before with another seller, amount or fee."""

    code = "earning_conflict"


class InvalidEarningState(InvalidStateTransition):
    """The earning is not in a state that allows this (e.g. cancelling a posted earning)."""

    code = "invalid_earning_state"


class DisputeNotFound(NotFound):
    code = "dispute_not_found"


class DisputeConflict(IdempotencyConflict):
    """The dispute id exists with another seller, order or amount."""

    code = "dispute_conflict"


class DisputeAlreadyResolved(InvalidStateTransition):
    """The dispute was resolved with the other outcome."""

    code = "dispute_already_resolved"
