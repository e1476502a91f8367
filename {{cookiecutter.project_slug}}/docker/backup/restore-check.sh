#!/bin/sh
# Checks a restore can work before `make restore` changes anything: the repository is
# readable, it holds a backup, and TARGET (if given) lies between the first backup and
# now. Prints one line and exits 1 when it cannot. Usage: restore-check [TARGET]
set -eu

target="${1:-}"
repo="${BACKUP_REPO:-}"
fail() { echo "restore: $*" >&2; exit 1; }

# A short I/O timeout: an unreachable bucket should fail in seconds, not after minutes of retries.
info=$(pgbackrest-compose ${repo:+--repo="$repo"} --io-timeout=5 info --output=json 2>/tmp/info.err) ||
    fail "cannot read the backup repository: $(tail -n 1 /tmp/info.err)"
# A repository that cannot be reached or read (wrong keys, no such bucket) is reported per repository.
broken=$(printf '%s\n' "$info" | jq -r '.[0].repo[]? | select(.status.code == 99)
    | "repo\(.key): \(.status.message | split("\n")[0] | sub(":\\s*$"; "") | .[:200])"' | head -n 1)
[ -z "$broken" ] || fail "cannot read backup $broken. Check BACKUP_S3_ENDPOINT, BACKUP_S3_BUCKET and the BACKUP_S3_KEY pair in .env."
first=$(printf '%s\n' "$info" | jq '[.[0].backup[]?.timestamp.stop] | min // 0')
[ "$first" -gt 0 ] || fail "there is no backup to restore from${repo:+ in repo$repo} yet: run make backup first."

if [ -n "$target" ]; then
    when=$(date -u -d "$target" +%s 2>/dev/null) ||
        fail "TARGET=\"$target\" is not a time: use \"YYYY-MM-DD HH:MM:SS\" (UTC unless it ends in an offset such as +01)."
    [ "$when" -ge "$first" ] ||
        fail "TARGET=\"$target\" is before the oldest backup ($(date -u -d "@$first" '+%Y-%m-%d %H:%M:%S') UTC): nothing to restore from; pick a later time (make backups lists them)."
    [ "$when" -le "$(date +%s)" ] || fail "TARGET=\"$target\" is in the future."
fi
echo "restore: backups found, the oldest finished $(date -u -d "@$first" '+%Y-%m-%d %H:%M:%S') UTC"
