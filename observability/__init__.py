"""Logs and metrics shared by the API and the worker processes.

``observability.logs``: one logging setup (JSON lines off a terminal, text on one) and the
context (request id, seller id, workflow id) that every log line carries.
``observability.metrics``: the process-wide Prometheus counters and the metered ledger.

Imports nothing of api, workflows, activities or payouts (see .importlinter), so every process
can use it.
"""
