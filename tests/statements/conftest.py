"""Statement fixtures: the API app on the session's PostgreSQL and an admin client
(``tests.api.conftest``); the seller and wallet stories in ``tests.statements.helpers``."""

from tests.api.conftest import admin_key, anon, app, client  # noqa: F401
