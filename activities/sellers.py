"""Activities of the seller hold workflow: book, post, cancel and extend earnings, release
rolling reserves. Each runs one database transaction through ``marketplace``; each is idempotent
(keyed by the order id), so a retry or a replay never moves money twice."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities.database import in_transaction
from activities.types import (
    BOOK_EARNING,
    CANCEL_EARNING,
    EXTEND_HOLD,
    POST_EARNING,
    RELEASE_RESERVE,
    BookEarningInput,
    CancelEarningInput,
    EarningResult,
    ExtendHoldInput,
    PostEarningInput,
    ReleaseReserveInput,
)
from marketplace import Earning, Marketplace
from observability.metrics import HOLD_RELEASES


def earning_result(earning: Earning) -> EarningResult:
    return EarningResult(
        order_id=earning.order_id,
        seller_id=earning.seller_id,
        currency=earning.currency,
        amount=earning.amount,
        fee=earning.fee,
        net=earning.net,
        status=str(earning.status),
        hold_until=earning.hold_until,
        ledger_transaction_id=str(earning.ledger_transaction_id),
        posted_at=earning.posted_at,
        cancelled_at=earning.cancelled_at,
        reserve_amount=earning.reserve_amount,
        reserve_release_at=earning.reserve_release_at,
        reserve_released_at=earning.reserve_released_at,
        metadata=earning.metadata,
    )


class SellerActivities:
    """Built once per worker with its engine; the methods are the activities (sync: the worker
    runs them in its thread pool)."""

    def __init__(self, engine: Engine, marketplace: Marketplace | None = None) -> None:
        self.engine = engine
        self.marketplace = marketplace or Marketplace()

    @activity.defn(name=BOOK_EARNING)
    def book_earning(self, input: BookEarningInput) -> EarningResult:
        """The pending ledger transaction of an order, on hold for the seller's hold period
        (read from the seller now, so a changed hold period applies to new earnings)."""
        return in_transaction(
            self.engine,
            lambda conn: earning_result(
                self.marketplace.book_earning(
                    conn,
                    seller_id=input.seller_id,
                    order_id=input.order_id,
                    amount=input.amount,
                    fee=input.fee,
                    metadata=input.metadata,
                    booked_at=input.booked_at,
                )
            ),
        )

    @activity.defn(name=POST_EARNING)
    def post_earning(self, input: PostEarningInput) -> EarningResult:
        """Post the earning (its hold ended) and hold back its rolling reserve, if any."""
        result = in_transaction(
            self.engine,
            lambda conn: earning_result(
                self.marketplace.post_earning(conn, input.order_id, at=input.at)
            ),
        )
        HOLD_RELEASES.inc()  # committed (a retried attempt that had committed counts again)
        return result

    @activity.defn(name=CANCEL_EARNING)
    def cancel_earning(self, input: CancelEarningInput) -> EarningResult:
        """Refund during the hold: archive the pending earning."""
        return in_transaction(
            self.engine,
            lambda conn: earning_result(self.marketplace.cancel_earning(conn, input.order_id)),
        )

    @activity.defn(name=EXTEND_HOLD)
    def extend_hold(self, input: ExtendHoldInput) -> EarningResult:
        return in_transaction(
            self.engine,
            lambda conn: earning_result(
                self.marketplace.extend_hold(conn, input.order_id, input.hold_until)
            ),
        )

    @activity.defn(name=RELEASE_RESERVE)
    def release_reserve(self, input: ReleaseReserveInput) -> EarningResult:
        """The reserve period ended: archive the reserve's pending debit."""
        return in_transaction(
            self.engine,
            lambda conn: earning_result(self.marketplace.release_reserve(conn, input.order_id)),
        )
