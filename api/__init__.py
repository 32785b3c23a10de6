"""The HTTP front door (FastAPI): reads the ledger, starts and steers workflows.

What lives here:

* ``api.app``: the application factory (``create_app``); ``api.routers``: one router per
  resource, routes only;
* ``api.schemas``: every request and response model, one module per resource, the shared field
  types and base models in ``api.schemas.common``; response models are built from domain objects
  by attribute;
* the cross-cutting parts every route uses: ``auth`` (API keys and roles), ``modes`` (live and
  test mode: a key sees the objects of its mode only), ``scoping`` (which seller a key sees),
  ``routing`` (unit of work, admission, idempotency), ``idempotency``, ``pagination``,
  ``problems`` (every error as ``application/problem+json``), ``links``, ``booking`` (group
  commit of earnings), ``workflow_calls`` (a Temporal call's failures as problems),
  ``observability``, ``dependencies`` and ``tables``;
* ``statement_formats``: a statement as JSON, CSV or PDF, chosen by ``Accept``.

What it may import: ``ledger_core`` (reads and synchronous ledger writes), ``marketplace`` (the
domain services), the Temporal callers (the functions that start, signal, update and query
workflows) and the contracts they share with the workflows (input and result types, workflow
ids, the task queue), ``observability``, and ``payment_rail``'s webhook verification. Never
workflow definitions nor activity implementations: those run in the worker only, and the
import-linter contracts keep them out.
"""
