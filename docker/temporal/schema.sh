#!/bin/sh
# One-shot (temporalio/admin-tools): create or upgrade Temporal's schemas in the databases that
# docker/postgres/init-databases.sh created. Idempotent: a later run applies only what a newer
# server version added, so bumping TEMPORAL_VERSION upgrades the schema before the server starts.
set -eu

: "${SQL_HOST:=postgres}" "${SQL_PORT:=5432}" "${SQL_USER:=temporal}" "${SQL_PASSWORD:?}"
export SQL_PASSWORD # temporal-sql-tool reads it from the environment
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" "$@"
}

sql_tool --db temporal setup-schema -v 0.0
sql_tool --db temporal update-schema -d "$SCHEMA_DIR/temporal/versioned"

sql_tool --db temporal_visibility setup-schema -v 0.0
sql_tool --db temporal_visibility update-schema -d "$SCHEMA_DIR/visibility/versioned"

echo "Temporal schemas are up to date"
