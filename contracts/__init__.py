"""What workflows, activities and their callers share: the Temporal contracts of the platform.

One module per feature (``holds``, ``disputes``, ``payouts`` (payouts and refunds), ``payout_runs``,
``webhooks``, ``wallets``, ``test_clocks``; ``common`` for what they all use): workflow, update,
signal and query names, activity names, workflow-id functions, search attribute keys, the
business error codes that are never retried, and the inputs and results as plain dataclasses.
These are the payloads Temporal stores in histories: a field may be added with a default, never
renamed or retyped, or recorded runs stop replaying.

May import the standard library and ``temporalio.common`` / ``temporalio.exceptions`` only: no
database code and no other package of the platform (an import-linter contract keeps it so), so
workflow code, the worker, the API and the Temporal callers can all import it.
"""
