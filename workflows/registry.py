"""What the worker runs: every workflow class (on ``contracts.common.TASK_QUEUE``)."""

from __future__ import annotations

from typing import Any

from workflows.disputes import DisputeWorkflow
from workflows.payout_runs import PayoutRunWorkflow
from workflows.payouts import PayoutWorkflow
from workflows.refunds import RefundWorkflow
from workflows.seller_holds import SellerHoldWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow

# Every workflow class the worker registers (filled as workflows land).
WORKFLOWS: list[type[Any]] = [
    SellerHoldWorkflow,
    DisputeWorkflow,
    PayoutWorkflow,
    RefundWorkflow,
    PayoutRunWorkflow,
    WebhookDeliveryWorkflow,
]
