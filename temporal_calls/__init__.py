"""The Temporal callers: start, signal, update, query and describe workflows and schedules.

One module per feature (``holds``, ``disputes``, ``payouts``, ``schedules``, ``webhooks``,
``wallets``, ``test_clocks``), ``errors``: ``WorkflowRequestError`` (``.code``, ``.message``)
for a rejected or failed request, with the domain's codes, and the one helper that reads
Temporal's NOT_FOUND; and
``search``: the ``SellerId`` search attribute every start sets. Used by the API, the worker's
dispatcher and activities (a returned payout pauses its seller's schedule).

Workflows are called by the names kept in ``contracts`` (``client.start_workflow(
"SellerHoldWorkflow", ...)``, ``handle.execute_update(RELEASE_HOLD_UPDATE, ...,
result_type=...)``), so this package imports ``contracts``, ``temporalio`` and
``payment_rail`` (a rail event's shape) only: never ``workflows``, ``activities``, ``api``, the
database or the domain, and neither the API nor the activities load workflow code through it.
"""
