"""Process-wide Prometheus metrics and the metered ledger.

These live in prometheus-client's default registry, so each process exposes its own: the API on
``GET /metrics``, the worker on its metrics port (``PAYOUTS_WORKER_METRICS_PORT``). Counters
start at zero when a process starts; Prometheus' ``rate()``/``increase()`` handle that, and a
sum over the processes gives the platform's total.

Ledger writes are counted from outside ``ledger_core`` (which stays free of any of this): the API
and the worker's activities write through ``MeteredLedgerService``, a ``LedgerService`` that
counts each write call that returned. A write whose database transaction is rolled back later,
or an idempotent replay of a write, is still counted: the counter measures write activity, the
ledger itself is the record of money.
"""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Connection

from ledger_core import LedgerService, LedgerTransaction, TransactionStatus

LEDGER_WRITES = Counter(
    "payouts_ledger_writes",
    "Ledger transaction writes by kind: created (reversals included), posted, archived, reversed.",
    ["kind"],
)
HOLD_RELEASES = Counter(
    "payouts_hold_releases",
    "Earnings posted when their hold ended or was released early (post_earning activity).",
)
ACTIVITY_EXECUTIONS = Counter(
    "payouts_activity_executions",
    "Activity attempts by activity type and outcome (completed, failed, cancelled).",
    ["activity", "outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "payouts_webhook_deliveries",
    "Webhooks by direction (received: the payment rail's; sent: to subscribers) and outcome.",
    ["direction", "outcome"],
)

for _kind in ("created", "posted", "archived", "reversed"):
    LEDGER_WRITES.labels(kind=_kind)  # present at 0 from the start


class MeteredLedgerService(LedgerService):
    """A ``LedgerService`` that counts its transaction writes in ``payouts_ledger_writes``."""

    def create_transaction(self, *args: Any, **kwargs: Any) -> LedgerTransaction:
        result = super().create_transaction(*args, **kwargs)
        LEDGER_WRITES.labels(kind="created").inc()
        return result

    def update_transaction(
        self,
        conn: Connection,
        transaction_id: uuid.UUID,
        *,
        status: TransactionStatus | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> LedgerTransaction:
        result = super().update_transaction(conn, transaction_id, status=status, metadata=metadata)
        if status is not None:
            LEDGER_WRITES.labels(kind=str(TransactionStatus(status))).inc()
        return result

    def reverse_transaction(self, *args: Any, **kwargs: Any) -> LedgerTransaction:
        result = super().reverse_transaction(*args, **kwargs)
        LEDGER_WRITES.labels(kind="reversed").inc()
        return result
