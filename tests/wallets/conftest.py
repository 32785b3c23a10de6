"""Wallet fixtures: the API app on the session's PostgreSQL and an admin client
(``tests.api.conftest``), the time-skipping server for one test (``tests.workflows.conftest``);
helpers in ``tests.wallets.helpers``."""

from tests.api.conftest import admin_key, anon, app, client  # noqa: F401
from tests.workflows.conftest import registered_time_skipping_env, skipping_env  # noqa: F401
