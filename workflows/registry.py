"""What the worker runs: every workflow class (on ``contracts.common.TASK_QUEUE``), and the
sandbox it runs them in."""

from __future__ import annotations

from typing import Any

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.disputes import DisputeWorkflow
from workflows.payout_runs import PayoutRunWorkflow
from workflows.payouts import PayoutWorkflow
from workflows.refunds import RefundWorkflow
from workflows.seller_holds import SellerHoldWorkflow
from workflows.test_clocks import TestClockAdvanceWorkflow
from workflows.wallet_expiries import WalletExpiryWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow

# Every workflow class the worker registers (filled as workflows land).
WORKFLOWS: list[type[Any]] = [
    SellerHoldWorkflow,
    DisputeWorkflow,
    PayoutWorkflow,
    RefundWorkflow,
    PayoutRunWorkflow,
    WebhookDeliveryWorkflow,
    WalletExpiryWorkflow,
    TestClockAdvanceWorkflow,
]

# The sandbox re-imports workflow code for every run. ``contracts`` (plain dataclasses,
# deterministic) is always the host's module: imported inside the sandbox, its ``datetime``
# annotations would name the sandbox's restricted stand-in, and nested payloads with datetimes
# would not decode (workflow modules import it passed through; this also covers any other).
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("contracts")
)
