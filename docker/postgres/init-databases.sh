#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (/docker-entrypoint-initdb.d):
# a role and a database for the platform, and a role owning Temporal's two databases
# (persistence and visibility, whose schemas the temporal-schema service sets up).
# Passwords come from docker-compose.yml; changing them later takes an ALTER ROLE.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v payouts_password="$PAYOUTS_DB_PASSWORD" \
    -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE payouts LOGIN PASSWORD :'payouts_password';
CREATE DATABASE payouts OWNER payouts;

CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
SQL
