"""Temporal activities: the only place workflows touch the ledger and the payment rail.

Classes built once per worker with their database engine (and rail, Temporal client), whose
methods are registered under the activity names in ``contracts``: one module per feature, with
``database`` (their base, one transaction per step, domain errors as non-retryable
``ApplicationError``s) and ``results`` (the contract results built from domain objects).

May import ``contracts``, ``marketplace``, ``ledger_core``, ``payment_rail``, ``observability``
and ``temporal_calls`` (to pause a payout schedule; a test clock's advance wakes workflows and
runs schedules through it); never ``workflows``, ``api`` or ``server``.
"""
