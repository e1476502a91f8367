#!/bin/sh
# `pgbackrest info --output=json` for jq. pgBackRest 2.45 copies multi-line error
# messages (an S3 error response, say) into the JSON with raw newlines, which is not
# valid JSON: flatten them to spaces. Usage: backup-info [--repo=N] [other options]
set -eu

json=$(pgbackrest-compose "$@" info --output=json)
printf '%s\n' "$json" | tr '\n\r\t' '   '
echo
