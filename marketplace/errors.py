"""Every marketplace error (sellers, earnings, disputes, payouts, refunds, events and webhooks,
reconciliation, wallets). Each subclasses the ledger error of the same kind (so a handler that maps
``NotFound`` to 404 or ``IdempotencyConflict`` to 409 covers them) and has its own stable
``code``. ``*_not_found(id)`` words a not-found error the one way the domain and the API both
answer it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger_core.errors import (
    BalanceConditionFailed,
    IdempotencyConflict,
    InvalidStateTransition,
    NotFound,
    ValidationFailed,
)

if TYPE_CHECKING:
    from marketplace.booking import BookingOutcome


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


class BatchRejected(ValidationFailed):
    """An atomic batch with an item that cannot be booked: nothing was booked."""

    code = "batch_rejected"

    def __init__(self, outcomes: list[BookingOutcome]) -> None:
        failed = [(i, o.error) for i, o in enumerate(outcomes) if o.error is not None]
        super().__init__(
            f"{len(failed)} of {len(outcomes)} earnings cannot be booked; the atomic batch "
            "booked none",
            errors=[{"index": i, "code": e.code, "detail": e.message} for i, e in failed if e],
        )
        self.outcomes = outcomes


# -------------------------------------------------------------------- payouts and refunds


class PayoutAccountMissing(InvalidStateTransition):
    """The seller has no payout account: it is never paid until it has one."""

    code = "payout_account_missing"


class PayoutAccountFailed(InvalidStateTransition):
    """The seller's payout account failed (closed, not found, an invalid number): it is not paid
    again until a new payout account is set."""

    code = "payout_account_failed"


class InstantNotSupported(InvalidStateTransition):
    """The seller's payout account takes no instant payments (the rail says so)."""

    code = "instant_not_supported"


class InstantLimitExceeded(InvalidStateTransition):
    """The instant payout would pass the seller's daily instant limit."""

    code = "instant_limit_exceeded"


class PayoutAccountNotFound(NotFound):
    code = "payout_account_not_found"


class NothingToPay(BalanceConditionFailed):
    """A payout of the whole available balance, and available is 0 or negative."""

    code = "nothing_to_pay"


class PayoutNotFound(NotFound):
    code = "payout_not_found"


class PayoutConflict(IdempotencyConflict):
    """The payout id exists for another seller or amount."""

    code = "payout_conflict"


class InvalidPayoutState(InvalidStateTransition):
    """The payout is not in a state that allows this (e.g. cancelling a submitted payout)."""

    code = "invalid_payout_state"


class RefundConflict(IdempotencyConflict):
    """The refund id exists for another order or amount."""

    code = "refund_conflict"


class RefundExceedsEarning(ValidationFailed):
    """More than what is left of the earning (amount - refunded so far)."""

    code = "refund_exceeds_earning"


class RefundNotFound(NotFound):
    code = "refund_not_found"


# -------------------------------------------------------------------- events and webhooks


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class EventNotFound(NotFound):
    code = "event_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


class InvalidDeliveryState(InvalidStateTransition):
    code = "invalid_delivery_state"


# -------------------------------------------------------------------- reconciliation


class StatementUnreadable(ValidationFailed):
    """The file is not a statement CSV; ``line`` is where it went wrong (1 is the header)."""

    code = "statement_unreadable"


class StatementNotFound(NotFound):
    code = "statement_not_found"


# -------------------------------------------------------------------- wallets


class WalletNotFound(NotFound):
    code = "wallet_not_found"


class WalletExists(IdempotencyConflict):
    """A wallet with this id exists with another owner, name, currency or metadata."""

    code = "wallet_exists"


class TopUpNotFound(NotFound):
    code = "top_up_not_found"


class TopUpNotPending(InvalidStateTransition):
    """Settling a failed top-up, or failing a settled one."""

    code = "top_up_not_pending"


class InvalidTopUpState(InvalidStateTransition):
    """The top-up's expiry cannot change any more: it failed, or it expired."""

    code = "invalid_top_up_state"


class SpendNotFound(NotFound):
    code = "spend_not_found"


class RefundExceedsSpend(ValidationFailed):
    """More than what is left of the spend (amount - refunded so far)."""

    code = "refund_exceeds_spend"


class WalletTransferNotFound(NotFound):
    code = "wallet_transfer_not_found"


# -------------------------------------------------------------------- test clocks
# (``__test__ = False``: named Test..., they are no test classes for pytest.)


class TestClockNotFound(NotFound):
    __test__ = False
    code = "test_clock_not_found"


class TestClockExists(IdempotencyConflict):
    """A test clock with this id exists with another name or time."""

    __test__ = False
    code = "test_clock_exists"


class TestClockAdvancing(InvalidStateTransition):
    """The clock is advancing: it cannot advance elsewhere or be deleted until it is ready."""

    __test__ = False
    code = "test_clock_advancing"


class TestClockInUse(InvalidStateTransition):
    """The clock still has sellers or wallets: it is not deleted."""

    __test__ = False
    code = "test_clock_in_use"


class TestClockNotLater(ValidationFailed):
    """An advance must move the clock forward (to a ``frozen_time`` later than its own)."""

    __test__ = False
    code = "test_clock_time_not_later"


# -------------------------------------------------------------------- not found, worded once


def seller_not_found(seller_id: str) -> SellerNotFound:
    return SellerNotFound(f"seller {seller_id!r} not found", resource="seller")


def earning_not_found(order_id: str) -> EarningNotFound:
    return EarningNotFound(f"earning of order {order_id!r} not found")


def dispute_not_found(dispute_id: str) -> DisputeNotFound:
    return DisputeNotFound(f"dispute {dispute_id!r} not found", resource="dispute")


def payout_not_found(payout_id: str) -> PayoutNotFound:
    return PayoutNotFound(f"payout {payout_id!r} not found", resource="payout")


def event_not_found(event_id: str) -> EventNotFound:
    return EventNotFound(f"event {event_id!r} not found", resource="event")


def wallet_not_found(wallet_id: str) -> WalletNotFound:
    return WalletNotFound(f"wallet {wallet_id!r} not found", resource="wallet")


def top_up_not_found(top_up_id: str) -> TopUpNotFound:
    return TopUpNotFound(f"top-up {top_up_id!r} not found", resource="top_up")


def spend_not_found(spend_id: str) -> SpendNotFound:
    return SpendNotFound(f"spend {spend_id!r} not found", resource="spend")


def wallet_transfer_not_found(transfer_id: str) -> WalletTransferNotFound:
    return WalletTransferNotFound(
        f"wallet transfer {transfer_id!r} not found", resource="wallet_transfer"
    )


def clock_not_found(clock_id: str) -> TestClockNotFound:
    return TestClockNotFound(f"test clock {clock_id!r} not found", resource="test_clock")
