#!/bin/sh
# `make restore [TARGET="YYYY-MM-DD HH:MM:SS"] [REPO=2] CONFIRM=yes`: put the database back
# as it was at TARGET (UTC), or at the newest archived WAL without one.
#   1. check the backups and TARGET, changing nothing;  2. ask for confirmation;
#   3. archive the primary's current WAL, stop the app, the replica and the backups;
#   4. pgBackRest restores the primary's volume and replays WAL up to TARGET;
#   5. wipe the replica, which copies the restored primary again when it starts;
#   6. take a fresh full backup, then start the app (its entrypoint runs the migrations).
set -eu

COMPOSE="${COMPOSE:-docker compose}"
TARGET="${TARGET:-}"
REPO="${REPO:-}"
say() { echo "restore: $*"; }
fail() { echo "restore: $*" >&2; exit 1; }
psql_primary() {  # one value from the primary, as the container's own superuser
    $COMPOSE exec -T db-primary sh -c 'psql -XqtA --username "$POSTGRES_USER" --dbname postgres --command "$1"' \
        sh "$1" 2>/dev/null
}
primary_promoted() { [ "$(psql_primary 'SELECT pg_is_in_recovery()')" = f ]; }
replica_streaming() {
    [ "$(psql_primary "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge 1 ]
}
wait_for() {  # wait_for <service> <check>: up to 10 minutes
    tries=0
    until "$2" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail "$1 did not come up within 10 minutes: see $COMPOSE logs"
        sleep 2
    done
}

# 1. Nothing changes until the backups, the repository and TARGET check out.
$COMPOSE run --rm --no-deps -T -e BACKUP_REPO="$REPO" db-backup restore-check "$TARGET" >/dev/null

# 2. Say what will be overwritten, and go on only when told to.
say "this OVERWRITES the database on db-primary (its whole data volume) with its state at ${TARGET:-the newest archived WAL}${TARGET:+ UTC},"
say "wipes and re-copies db-replica, and stops the app meanwhile. Rows written after that point are lost."
if [ "${CONFIRM:-}" != "yes" ]; then
    answer=""
    if [ -t 0 ]; then
        printf "restore: type yes to go on: "
        read -r answer || true
    fi
    [ "$answer" = "yes" ] || fail "not confirmed, nothing changed: run it again with CONFIRM=yes to overwrite the database."
fi

# 3. The newest WAL is archived first (if the primary still runs), so "latest" means now.
started=$(date +%s)
$COMPOSE exec -T db-backup pgbackrest-compose check >/dev/null 2>&1 || say "the primary is not answering: restoring from what was archived"
$COMPOSE stop app db-backup db-replica db-primary

# 4. Restore the primary's volume; PostgreSQL replays WAL to TARGET, then promotes itself.
if [ -n "$TARGET" ]; then
    set -- --type=time "--target=$TARGET" --target-action=promote
else
    set -- --type=default
fi
$COMPOSE run --rm --no-deps -T db-backup pgbackrest-compose ${REPO:+--repo="$REPO"} restore --delta "$@" \
    "--recovery-option=restore_command=pgbackrest-compose ${REPO:+--repo=$REPO }archive-get %f \"%p\""
$COMPOSE start db-primary
wait_for db-primary primary_promoted
# pgBackRest wrote restore_command and the recovery target into postgresql.auto.conf.
# The replica copies that file: it would call pgBackRest (not in its image) and, with
# the target, promote itself at the first commit after TARGET. Remove them.
for setting in restore_command recovery_target_time recovery_target_action recovery_target_timeline; do
    psql_primary "ALTER SYSTEM RESET $setting" >/dev/null
done
psql_primary 'SELECT pg_reload_conf()' >/dev/null
say "primary restored and promoted in $(( $(date +%s) - started )) s"

# 5. The replica's entrypoint copies the primary again into an empty volume.
$COMPOSE run --rm --no-deps -T --entrypoint sh db-replica -c 'find "$PGDATA" -mindepth 1 -delete'
$COMPOSE start db-replica
wait_for db-replica replica_streaming
say "replica streaming again"

# 6. A full backup on the new timeline (before the service starts, so neither waits on
#    the other's lock), then the service and the app.
$COMPOSE run --rm --no-deps -T db-backup backup-now ||
    say "the fresh backup failed (see above): run make backup once the app is up"
$COMPOSE start db-backup
$COMPOSE start app
say "done in $(( $(date +%s) - started )) s; the app is starting (its entrypoint applies migrations)"
