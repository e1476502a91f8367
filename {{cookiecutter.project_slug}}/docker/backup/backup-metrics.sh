#!/bin/sh
# Write the backup and WAL-archive metrics for Prometheus to a file the service's busybox
# httpd serves (http://db-backup:9854/metrics.txt). Timestamps, not ages: Prometheus
# computes the age (time() - value), so a stale file cannot hide an old backup.
set -eu

out=/var/lib/backup-metrics/metrics.txt
tmp="$out.tmp"
info=$(pgbackrest-compose info --output=json)
{
    echo "# HELP backup_last_success_timestamp_seconds When the newest complete backup in the repository finished."
    echo "# TYPE backup_last_success_timestamp_seconds gauge"
    printf '%s\n' "$info" | jq -r '.[0].backup // [] | group_by(.database["repo-key"])[]
        | "backup_last_success_timestamp_seconds{repo=\"\(.[0].database["repo-key"])\"} \(map(.timestamp.stop) | max)"'
    echo "# HELP backup_last_size_bytes Size in the repository of the newest backup (compressed)."
    echo "# TYPE backup_last_size_bytes gauge"
    printf '%s\n' "$info" | jq -r '.[0].backup // [] | group_by(.database["repo-key"])[] | max_by(.timestamp.stop)
        | "backup_last_size_bytes{repo=\"\(.database["repo-key"])\"} \(.info.repository.delta)"'
    # The archiver's own view, from the primary: when it last archived a WAL segment and
    # how many finished segments still wait for archive_command.
    psql --no-psqlrc --quiet --tuples-only --no-align --field-separator=' ' \
        --host /var/run/postgresql --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        --command "SELECT coalesce(extract(epoch FROM last_archived_time), 0)::bigint, failed_count,
                      (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')
                   FROM pg_stat_archiver" |
    while read -r archived failed waiting; do
        echo "# HELP backup_wal_last_archived_timestamp_seconds When the primary last archived a WAL segment."
        echo "# TYPE backup_wal_last_archived_timestamp_seconds gauge"
        echo "backup_wal_last_archived_timestamp_seconds $archived"
        echo "# HELP backup_wal_archive_failures_total archive_command failures since the statistics reset."
        echo "# TYPE backup_wal_archive_failures_total counter"
        echo "backup_wal_archive_failures_total $failed"
        echo "# HELP backup_wal_segments_waiting Finished WAL segments not archived yet."
        echo "# TYPE backup_wal_segments_waiting gauge"
        echo "backup_wal_segments_waiting $waiting"
    done
} > "$tmp"
mv "$tmp" "$out"
