"""Temporal workflows: the durable money processes. Deterministic; no I/O, no SQLAlchemy.

Workflow definitions only, plus ``registry`` (the classes the worker runs), ``errors`` (the
workflow side of business errors) and ``common`` (retry policies and activity-call helpers the
workflows share). Activities are called by name; names, inputs and results come from
``contracts``. May import ``contracts`` and ``temporalio``: no database code, no ``ledger_core``
or ``marketplace``, no ``activities``, ``api``, ``server`` or ``temporal_calls``.
"""
