#!/bin/sh
# `make backups`: every backup with its repository, finish time, age and size, then the
# window a restore can reach (first backup to the newest archived WAL).
set -eu

info=$(pgbackrest-compose info --output=json)
printf '%s\n' "$info" | jq -r --argjson now "$(date +%s)" '
    def size: if . >= 1073741824 then "\(. / 1073741824 * 10 | floor / 10) GiB"
              elif . >= 1048576 then "\(. / 1048576 * 10 | floor / 10) MiB"
              else "\(. / 1024 | floor) KiB" end;
    def age: if . >= 86400 then "\(. / 86400 | floor) d \(. % 86400 / 3600 | floor) h"
             elif . >= 3600 then "\(. / 3600 | floor) h \(. % 3600 / 60 | floor) min"
             else "\(. / 60 | floor) min" end;
    def pad(width): . + " " * ([width - length, 1] | max);
    def row: "\(.[0] | pad(26))\(.[1] | pad(6))\(.[2] | pad(7))\(.[3] | pad(21))\(.[4] | pad(12))\(.[5] | pad(10))\(.[6])";
    .[0] as $stanza
    | (["LABEL", "TYPE", "REPO", "FINISHED (UTC)", "AGE", "DATABASE", "STORED"] | row),
      ($stanza.backup[]? | [.label, .type, "repo\(.database["repo-key"])",
        (.timestamp.stop | strftime("%Y-%m-%d %H:%M:%S")), ($now - .timestamp.stop | age),
        (.info.size | size), (.info.repository.delta | size)] | row)'

printf '%s\n' "$info" | jq -r '.[0] |
    if (.backup | length) == 0 then "No backup yet: run make backup."
    else "Restorable from \(.backup | map(.timestamp.stop) | min | strftime("%Y-%m-%d %H:%M:%S")) UTC to the newest archived WAL (\(.archive | map(.max) | max))." end'
