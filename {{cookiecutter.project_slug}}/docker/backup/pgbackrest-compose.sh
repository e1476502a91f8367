#!/bin/sh
# pgBackRest with this stack's settings, taken from the environment (no config file):
#   repo1  the db-backups volume, always;
#   repo2  S3-compatible object storage, when BACKUP_S3_BUCKET is set (the off-host copy).
# Usage: pgbackrest-compose <command> [options], e.g. `pgbackrest-compose info`. The name
# contains "pgbackrest" because pgBackRest checks that archive_command calls it.
set -eu

export PGBACKREST_STANZA="${BACKUP_STANZA:-app}"
export PGBACKREST_PG1_PATH="${PGDATA:-/var/lib/postgresql/data}"
export PGBACKREST_PG1_SOCKET_PATH=/var/run/postgresql
export PGBACKREST_PG1_USER="${POSTGRES_USER:-postgres}"
export PGBACKREST_LOG_LEVEL_CONSOLE="${BACKUP_LOG_LEVEL:-warn}"
export PGBACKREST_LOG_LEVEL_FILE=off
export PGBACKREST_START_FAST=y            # checkpoint now instead of waiting for the next one
export PGBACKREST_COMPRESS_TYPE=zst       # far less CPU than the default gzip, similar size
export PGBACKREST_PROCESS_MAX="${BACKUP_PROCESS_MAX:-1}"

export PGBACKREST_REPO1_PATH=/var/lib/pgbackrest
export PGBACKREST_REPO1_RETENTION_FULL="${BACKUP_RETENTION_FULL:-7}"

if [ -n "${BACKUP_S3_BUCKET:-}" ]; then
    # BACKUP_S3_ENDPOINT is a URL: https://host or https://host:port.
    endpoint="${BACKUP_S3_ENDPOINT:?BACKUP_S3_BUCKET is set, so set BACKUP_S3_ENDPOINT too (https://host[:port])}"
    case "$endpoint" in
        https://*) endpoint="${endpoint#https://}" ;;
        *) echo "pgbackrest-compose: BACKUP_S3_ENDPOINT=$endpoint: pgBackRest needs an https:// URL" >&2; exit 2 ;;
    esac
    endpoint="${endpoint%%/*}"
    export PGBACKREST_REPO2_TYPE=s3
    export PGBACKREST_REPO2_PATH="/${BACKUP_S3_PREFIX:-{{ cookiecutter.project_slug }}}"
    export PGBACKREST_REPO2_S3_BUCKET="$BACKUP_S3_BUCKET"
    export PGBACKREST_REPO2_S3_ENDPOINT="${endpoint%%:*}"
    case "$endpoint" in *:*) export PGBACKREST_REPO2_STORAGE_PORT="${endpoint##*:}" ;; esac
    export PGBACKREST_REPO2_S3_REGION="${BACKUP_S3_REGION:-us-east-1}"
    export PGBACKREST_REPO2_S3_KEY="${BACKUP_S3_KEY:?set BACKUP_S3_KEY in .env}"
    export PGBACKREST_REPO2_S3_KEY_SECRET="${BACKUP_S3_KEY_SECRET:?set BACKUP_S3_KEY_SECRET in .env}"
    # MinIO and most non-AWS stores want path-style URLs (https://host/bucket).
    export PGBACKREST_REPO2_S3_URI_STYLE="${BACKUP_S3_URI_STYLE:-path}"
    export PGBACKREST_REPO2_STORAGE_VERIFY_TLS="${BACKUP_S3_VERIFY_TLS:-y}"
    export PGBACKREST_REPO2_RETENTION_FULL="${BACKUP_RETENTION_FULL:-7}"
fi

exec pgbackrest "$@"
