#!/bin/sh
# A full backup now, to every configured repository (pgBackRest backs up one repository
# per run), then fresh metrics. `make backup` runs it in the db-backup service, and so
# does the service's own schedule.
set -eu

repos=1
[ -z "${BACKUP_S3_BUCKET:-}" ] || repos="1 2"

# Creates the stanza on the first run; a no-op once it exists. It covers every
# repository at once, so an unreachable bucket must not stop the local backup.
pgbackrest-compose stanza-create >/dev/null || echo "backup: stanza-create failed (see above), backing up anyway" >&2
status=0
for repo in $repos; do
    started=$(date +%s)
    if pgbackrest-compose --repo="$repo" backup --type=full; then
        echo "backup: repo$repo done in $(( $(date +%s) - started )) s"
    else
        echo "backup: repo$repo FAILED (see the pgBackRest error above)" >&2
        status=1
    fi
done
backup-metrics || true
exit "$status"
