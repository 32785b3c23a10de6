"""Activities of the payout and refund workflows: reserve, submit to the payment rail, ask the
rail, settle (paid, failed, returned), cancel, pause the seller's payout schedule, refund.

Each database step is one transaction through ``marketplace.Payouts``, idempotent by the payout
(or refund) id, so a retried or replayed activity never moves money twice. The rail is called with
the payout id as its idempotency key: a retry after a lost answer never pays twice. A test-mode
payout (its seller's mode) goes to the test rail, always a simulated bank
(``open_test_payment_rail``), whatever rail live payouts use.

Errors: domain errors are non-retryable ``ApplicationError``s with their code; ``RailUnavailable``
and database trouble propagate as ordinary exceptions and Temporal retries them; ``RailRejected``
is an answer, not an error: the payout is marked failed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.database import DatabaseActivities, in_transaction
from activities.results import payout_result, refund_result, reserve_payout_result
from contracts.payouts import (
    CANCEL_PAYOUT,
    GET_RAIL_STATUS,
    MARK_PAYOUT_FAILED,
    MARK_PAYOUT_PAID,
    MARK_PAYOUT_RETURNED,
    PAUSE_PAYOUT_SCHEDULE,
    REFUND_EARNING,
    RESERVE_PAYOUT,
    SUBMIT_PAYOUT,
    MarkPayoutInput,
    PauseScheduleInput,
    PayoutIdInput,
    PayoutResult,
    RailStatusResult,
    RefundEarningInput,
    RefundResult,
    ReservePayoutInput,
    ReservePayoutResult,
    is_destination_failure,
)
from marketplace import (
    InstantTerms,
    Marketplace,
    Payout,
    PayoutAccount,
    Payouts,
    PayoutState,
    Refunds,
)
from payment_rail import (
    BankAccount,
    PaymentRail,
    PayoutRequest,
    RailIdempotencyConflict,
    RailMethod,
    RailPayoutNotFound,
    RailRejected,
    open_test_payment_rail,
)
from temporal_calls.errors import WorkflowRequestError
from temporal_calls.schedules import pause_payout_schedule

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 60.0
DEFAULT_RETURN_WINDOW_SECONDS = 14 * 24 * 3600.0
DEFAULT_INSTANT_POLL_SECONDS = 5.0


class LazyRail:
    """A ``PaymentRail`` opened on first use (a worker that never pays anyone opens none)."""

    def __init__(self, factory: Callable[[], PaymentRail]) -> None:
        self._factory = factory
        self._rail: PaymentRail | None = None
        self._lock = threading.Lock()

    def get(self) -> PaymentRail:
        with self._lock:
            if self._rail is None:
                self._rail = self._factory()
            return self._rail

    def close(self) -> None:
        with self._lock:
            if self._rail is not None:
                self._rail.close()
                self._rail = None


class PayoutActivities(DatabaseActivities):
    """Built once per worker with its engine, the payment rails (live and test mode) and a
    Temporal client (to pause a seller's payout schedule). Sync methods except
    ``pause_schedule``."""

    def __init__(
        self,
        engine: Engine,
        rail: PaymentRail | LazyRail,
        *,
        test_rail: PaymentRail | LazyRail | None = None,
        marketplace: Marketplace | None = None,
        client: Client | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        return_window_seconds: float = DEFAULT_RETURN_WINDOW_SECONDS,
        instant_terms: InstantTerms | None = None,
        instant_poll_seconds: float = DEFAULT_INSTANT_POLL_SECONDS,
    ) -> None:
        super().__init__(engine, marketplace)
        self.payouts = Payouts(self.marketplace, instant_terms)
        self.instant_poll_seconds = instant_poll_seconds
        self.refunds = Refunds(self.marketplace)
        self._rail = rail
        self._test_rail = test_rail if test_rail is not None else LazyRail(open_test_payment_rail)
        self.client = client
        self.poll_seconds = poll_seconds
        self.return_window_seconds = return_window_seconds

    def rail_for(self, livemode: bool) -> PaymentRail:
        """The live rail, or for test mode the test rail (a simulated bank)."""
        rail = self._rail if livemode else self._test_rail
        return rail.get() if isinstance(rail, LazyRail) else rail

    def _seller_rail(self, seller_id: str) -> PaymentRail:
        livemode = in_transaction(
            self.engine, lambda conn: self.marketplace.seller_livemode(conn, seller_id)
        )
        return self.rail_for(livemode)

    @activity.defn(name=RESERVE_PAYOUT)
    def reserve_payout(self, input: ReservePayoutInput) -> ReservePayoutResult:
        """The pending debit seller -> payouts in transit and the payouts row. An instant payout:
        its fee in the same transaction, and first the rail's word that the payout account takes
        instant payments (``instant_not_supported`` otherwise, nothing reserved); an unavailable
        rail rolls the reservation back and the activity is retried."""
        payout = in_transaction(
            self.engine,
            lambda conn: self.payouts.reserve_payout(
                conn,
                payout_id=input.payout_id,
                seller_id=input.seller_id,
                amount=input.amount,
                origin=input.origin,
                run_id=input.run_id,
                metadata=input.metadata,
                method=input.method,
                instant_supported=self._supports_instant,
            ),
        )
        # The real-time rail answers in seconds: ask it sooner when its webhook is late.
        instant = payout.method == RailMethod.INSTANT
        return reserve_payout_result(
            payout,
            poll_seconds=min(self.poll_seconds, self.instant_poll_seconds)
            if instant
            else self.poll_seconds,
            return_window_seconds=self.return_window_seconds,
        )

    def _supports_instant(self, account: PayoutAccount) -> bool:
        destination = BankAccount(
            account_number=account.account_number,
            routing_number=account.routing_number,
            holder_name=account.holder_name,
        )
        try:
            return self._seller_rail(account.seller_id).supports_instant(destination)
        except RailRejected as exc:  # a number the rail cannot read takes no instant payments
            log.warning("rail refused the eligibility check of %s: %s", account, exc.code)
            return False

    @activity.defn(name=SUBMIT_PAYOUT)
    def submit_to_rail(self, input: PayoutIdInput) -> PayoutResult:
        """Submit the payout to the rail (idempotency key: the payout id) -> processing. A
        cancelled payout is not submitted; a rejected one is marked failed."""
        payout, livemode = in_transaction(
            self.engine,
            lambda conn: (
                self.payouts.begin_submission(conn, input.payout_id),
                self.payouts.payout_livemode(conn, input.payout_id),
            ),
        )
        if payout.status is not PayoutState.PENDING:
            return payout_result(payout)  # cancelled, or submitted by an earlier attempt
        request = PayoutRequest(
            payout_id=payout.id,
            amount=payout.amount,
            currency=payout.currency,
            destination=BankAccount(
                account_number=payout.account_number,
                routing_number=payout.routing_number,
                holder_name=payout.holder_name,
            ),
            description=f"Payout {payout.id}",
            metadata={"seller_id": payout.seller_id},
            method=RailMethod(payout.method),
        )
        try:
            submission = self.rail_for(livemode).submit_payout(request)
        except RailRejected as exc:
            log.warning("rail rejected payout %s: %s", payout.id, exc.code)
            code, reason = exc.code, exc.message
            return self._write(
                lambda conn: self.payouts.mark_failed(
                    conn, payout.id, code, reason, destination_failed=is_destination_failure(code)
                )
            )
        except RailIdempotencyConflict as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=True) from exc
        # RailUnavailable (and anything unexpected) propagates: Temporal retries with the same id.
        return self._write(
            lambda conn: self.payouts.mark_submitted(conn, payout.id, submission.rail_reference)
        )

    @activity.defn(name=GET_RAIL_STATUS)
    def get_rail_status(self, input: PayoutIdInput) -> RailStatusResult:
        """What the rail says now (the fallback when no webhook arrives)."""
        livemode = in_transaction(
            self.engine, lambda conn: self.payouts.payout_livemode(conn, input.payout_id)
        )
        try:
            status = self.rail_for(livemode).get_payout(input.payout_id)
        except RailPayoutNotFound:
            return RailStatusResult(status="unknown")
        return RailStatusResult(status=str(status.status), code=status.code, reason=status.reason)

    def _write(self, step: Callable[[Connection], Payout]) -> PayoutResult:
        """One database step on a payout, in its own transaction."""
        return payout_result(in_transaction(self.engine, step))

    @activity.defn(name=MARK_PAYOUT_PAID)
    def mark_paid(self, input: PayoutIdInput) -> PayoutResult:
        """Post the debit."""
        return self._write(lambda conn: self.payouts.mark_paid(conn, input.payout_id))

    @activity.defn(name=MARK_PAYOUT_FAILED)
    def mark_failed(self, input: MarkPayoutInput) -> PayoutResult:
        """Archive the debit: the money is available again. A failure of the destination
        (``DESTINATION_FAILURES``) also marks the payout account failed, in the same
        transaction."""
        return self._write(
            lambda conn: self.payouts.mark_failed(
                conn,
                input.payout_id,
                input.code,
                input.reason,
                destination_failed=is_destination_failure(input.code),
            )
        )

    @activity.defn(name=MARK_PAYOUT_RETURNED)
    def mark_returned(self, input: MarkPayoutInput) -> PayoutResult:
        """Reverse the posted debit: the seller is credited back."""
        return self._write(
            lambda conn: self.payouts.mark_returned(conn, input.payout_id, input.code, input.reason)
        )

    @activity.defn(name=CANCEL_PAYOUT)
    def cancel(self, input: PayoutIdInput) -> PayoutResult:
        """Archive a payout not yet submitted (invalid_payout_state once submission began)."""
        return self._write(lambda conn: self.payouts.cancel_payout(conn, input.payout_id))

    @activity.defn(name=PAUSE_PAYOUT_SCHEDULE)
    async def pause_schedule(self, input: PauseScheduleInput) -> bool:
        """Pause the seller's payout schedule with a note; False if it has none."""
        if self.client is None:
            raise ApplicationError(
                "the worker has no Temporal client to pause schedules with",
                type="no_temporal_client",
                non_retryable=True,
            )
        try:
            await pause_payout_schedule(self.client, input.seller_id, input.note)
        except WorkflowRequestError as err:
            if err.code == "payout_schedule_not_found":
                return False
            raise
        except RPCError as err:
            if err.status == RPCStatusCode.UNIMPLEMENTED:  # a server without schedules
                log.warning("cannot pause the payout schedule of %s: %s", input.seller_id, err)
                return False
            raise
        return True

    @activity.defn(name=REFUND_EARNING)
    def refund_earning(self, input: RefundEarningInput) -> RefundResult:
        """Refund (part of) an order: on hold, archive and rebook the rest; posted, debit the
        seller."""
        refund = in_transaction(
            self.engine,
            lambda conn: self.refunds.refund_earning(
                conn,
                refund_id=input.refund_id,
                seller_id=input.seller_id or self.marketplace.seller_of_order(conn, input.order_id),
                order_id=input.order_id,
                amount=input.amount,
                metadata=input.metadata,
            ),
        )
        return refund_result(refund, self.marketplace, self.engine)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.reserve_payout,
            self.submit_to_rail,
            self.get_rail_status,
            self.mark_paid,
            self.mark_failed,
            self.mark_returned,
            self.cancel,
            self.pause_schedule,
            self.refund_earning,
        ]
