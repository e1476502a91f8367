#!/bin/sh
# The db-backup service: a plain loop instead of cron (no cron or systemd in containers).
# Every minute it refreshes the metrics; when the newest backup in repo1 is older than
# BACKUP_INTERVAL_H hours (24 by default) it takes a full one. The schedule lives in
# the repository itself, so a restarted service neither skips nor repeats a backup.
set -eu

# As PID 1 the shell ignores signals it does not trap: stop promptly on `docker compose stop`.
trap 'exit 0' INT TERM
interval_s=$(( ${BACKUP_INTERVAL_H:-24} * 3600 ))
mkdir -p /var/lib/backup-metrics
: > /var/lib/backup-metrics/metrics.txt
busybox httpd -p 9854 -h /var/lib/backup-metrics

echo "backup-service: waiting for the primary"
until pg_isready --quiet --host /var/run/postgresql --username "${POSTGRES_USER:-postgres}"; do sleep 2; done
pgbackrest-compose stanza-create || echo "backup-service: stanza-create failed, retrying with each backup" >&2
echo "backup-service: a full backup every ${BACKUP_INTERVAL_H:-24} h, keeping ${BACKUP_RETENTION_FULL:-7}"

while true; do
    last=$(pgbackrest-compose --repo=1 info --output=json | jq '[.[0].backup[]?.timestamp.stop] | max // 0')
    if [ $(( $(date +%s) - last )) -ge "$interval_s" ]; then
        backup-now || echo "backup-service: backup failed, retrying in a minute" >&2
    fi
    backup-metrics || echo "backup-service: could not refresh the metrics" >&2
    sleep 60 &
    wait $! || true
done
