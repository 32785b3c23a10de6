"""Temporal activities: the only place workflows touch the ledger and the payment rail."""
