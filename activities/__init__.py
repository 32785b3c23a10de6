"""Temporal activities: the only place workflows touch the ledger and the payment rail.

Classes built once per worker with their database engine (and rail, Temporal client), whose
methods are registered under the activity names in ``contracts``. May import ``contracts``,
``marketplace``, ``ledger_core``, ``payment_rail`` and ``temporal_calls`` (to pause a payout
schedule); never ``workflows`` or ``api``.
"""
