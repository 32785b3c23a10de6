"""The payout-run activity: decide and record what one firing of a seller's payout schedule does
(``marketplace.payout_runs``), in one database transaction, idempotent per run id. A run that
starts a payout has reserved its money in that transaction; the activity hands the reservation to
the payout workflow (through the run workflow), which then does not reserve again."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities.database import DatabaseActivities, in_transaction
from activities.payouts import DEFAULT_POLL_SECONDS, DEFAULT_RETURN_WINDOW_SECONDS
from activities.results import reserve_payout_result
from contracts.payout_runs import DECIDE_PAYOUT_RUN, DecidePayoutRunInput, PayoutRunResult
from marketplace import Marketplace, Payouts
from marketplace.payout_runs import decide_payout_run


class PayoutRunActivities(DatabaseActivities):
    def __init__(
        self,
        engine: Engine,
        marketplace: Marketplace | None = None,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        return_window_seconds: float = DEFAULT_RETURN_WINDOW_SECONDS,
    ) -> None:
        super().__init__(engine, marketplace)
        self.poll_seconds = poll_seconds
        self.return_window_seconds = return_window_seconds

    @activity.defn(name=DECIDE_PAYOUT_RUN)
    def decide_payout_run(self, input: DecidePayoutRunInput) -> PayoutRunResult:
        """Pay the seller's available balance, or skip and say why (``payout_runs``)."""
        run, preview = in_transaction(
            self.engine,
            lambda conn: decide_payout_run(
                conn,
                self.marketplace,
                run_id=input.run_id,
                seller_id=input.seller_id,
                scheduled_at=input.scheduled_at,
                minimum_amount=input.minimum_amount,
            ),
        )
        reserved = None
        if run.payout_id is not None:
            payout_id = run.payout_id
            with self.engine.connect() as conn:
                payout = Payouts(self.marketplace).get_payout(conn, payout_id)
            reserved = reserve_payout_result(
                payout,
                poll_seconds=self.poll_seconds,
                return_window_seconds=self.return_window_seconds,
            )
        return PayoutRunResult(
            run_id=run.id,
            seller_id=run.seller_id,
            scheduled_at=run.scheduled_at,
            outcome=run.outcome,
            payout_id=run.payout_id,
            amount=run.amount,
            reason=run.reason,
            available=preview.available if preview is not None else None,
            reserved=reserved,
        )
