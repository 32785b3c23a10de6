"""Wallet fixtures: the API app on the session's PostgreSQL and an admin client
(``tests.api.conftest``); the time-skipping server for one test is ``skipping_env``
(tests/conftest.py); helpers in ``tests.wallets.helpers``."""

from tests.api.conftest import admin_key, anon, app, client  # noqa: F401
