"""Activities of the dispute (chargeback) workflow: open the pending debit on the seller, and
resolve it (won: archive, lost: post). Idempotent by dispute id."""

from __future__ import annotations

from sqlalchemy import Connection
from temporalio import activity

from activities.database import DatabaseActivities, in_transaction
from activities.results import dispute_result
from contracts.disputes import (
    OPEN_DISPUTE,
    RESOLVE_DISPUTE,
    DisputeInput,
    DisputeResult,
    ResolveDisputeInput,
)
from marketplace import Dispute, DisputeAlreadyResolved


class DisputeActivities(DatabaseActivities):
    @activity.defn(name=OPEN_DISPUTE)
    def open_dispute(self, input: DisputeInput) -> DisputeResult:
        return in_transaction(
            self.engine,
            lambda conn: dispute_result(
                self.marketplace.open_dispute(
                    conn,
                    dispute_id=input.dispute_id,
                    seller_id=input.seller_id,
                    order_id=input.order_id,
                    amount=input.amount,
                    deadline=input.deadline,
                    reason=input.reason,
                    metadata=input.metadata,
                )
            ),
        )

    @activity.defn(name=RESOLVE_DISPUTE)
    def resolve_dispute(self, input: ResolveDisputeInput) -> DisputeResult:
        """Resolve the dispute with the workflow's outcome, or return it as it is when it was
        resolved otherwise first: an operator's resolution is written by the API in its own
        transaction, and one that came as the deadline passed may be written before this; the
        database decides, the workflow records what it says."""

        def resolve(conn: Connection) -> Dispute:
            try:
                return self.marketplace.resolve_dispute(conn, input.dispute_id, input.outcome)
            except DisputeAlreadyResolved:
                return self.marketplace.get_dispute(conn, input.dispute_id)

        return dispute_result(in_transaction(self.engine, resolve))
