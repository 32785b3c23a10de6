"""The payout-run activity: decide and record what one firing of a seller's payout schedule does
(``marketplace.payout_runs``), in one database transaction, idempotent per run id."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities.database import in_transaction
from contracts.payout_runs import DECIDE_PAYOUT_RUN, DecidePayoutRunInput, PayoutRunResult
from marketplace import Marketplace
from marketplace.payout_runs import decide_payout_run


class PayoutRunActivities:
    def __init__(self, engine: Engine, marketplace: Marketplace | None = None) -> None:
        self.engine = engine
        self.marketplace = marketplace or Marketplace()

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
        return PayoutRunResult(
            run_id=run.id,
            seller_id=run.seller_id,
            scheduled_at=run.scheduled_at,
            outcome=run.outcome,
            payout_id=run.payout_id,
            amount=run.amount,
            reason=run.reason,
            available=preview.available if preview is not None else None,
        )
