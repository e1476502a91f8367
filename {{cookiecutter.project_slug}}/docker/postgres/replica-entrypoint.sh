#!/bin/sh
# Streaming replica: on an empty data volume, copy the primary with pg_basebackup -R
# (which also writes standby.signal and primary_conninfo), then run postgres as a
# hot standby (the container's command). Runs as the postgres user (`user: postgres`).
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
PRIMARY_HOST="${PRIMARY_HOST:-db-primary}"
export PGPASSWORD="${REPLICATION_PASSWORD:?set it in .env}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "replica: waiting for $PRIMARY_HOST"
    until pg_isready --quiet --host "$PRIMARY_HOST" --username replicator --dbname postgres; do
        sleep 1
    done
    echo "replica: copying $PRIMARY_HOST into $PGDATA"
    # A half-finished copy from an earlier attempt would make pg_basebackup refuse.
    find "$PGDATA" -mindepth 1 -delete
    pg_basebackup --host "$PRIMARY_HOST" --username replicator --pgdata "$PGDATA" \
        --write-recovery-conf --wal-method stream --checkpoint fast --progress
    chmod 0700 "$PGDATA"
fi
unset PGPASSWORD

[ "$#" -gt 0 ] || set -- postgres
exec "$@"
