"""Temporal workflows: the durable money processes. Deterministic; no I/O, no SQLAlchemy."""
