"""Logs and metrics shared by the API, the worker and the launcher.

What lives here: ``observability.logs``: one logging setup (JSON lines off a terminal, text on
one) and the context (request id, seller id, workflow id) that every log line carries.
``observability.metrics``: the process-wide Prometheus counters and ``MeteredLedgerService``, the
ledger that counts its writes (so ``ledger_core`` stays free of metrics).

What it may import: ``ledger_core`` (for the metered ledger), prometheus_client, SQLAlchemy and
the standard library; none of api, workflows, activities, marketplace or server, and no FastAPI
or Temporal (see .importlinter), so every process can use it.
"""
