"""The composition root: the ``payouts`` command and everything that wires the platform together.

What lives here: the settings read from the environment (``settings``), the database bootstrap
(embedded PostgreSQL, engines) and the Alembic migrations (``database``, ``migrations/``), the
CLI (``cli``), the ``payouts run`` launcher that supervises PostgreSQL, Temporal, the worker and
the API as child processes (``stack``, ``processes``, ``temporal_server``), the API's server and
its worker processes (``api_server``), and the Temporal worker with its dispatcher and metrics
endpoint (``worker``, ``dispatcher``, ``worker_observability``).

What it may import: everything (it builds the platform). Nothing imports ``server``: the other
packages receive what they need (settings values, engines, clients) as arguments.
"""
