#!/bin/sh
# Runs once, when the primary's data volume is initialised (/docker-entrypoint-initdb.d):
# a login role for streaming replication and a pg_hba.conf rule that lets it connect.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="${REPLICATION_PASSWORD:?set it in .env}" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL

echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
