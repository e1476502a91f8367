#!/bin/sh
# Entrypoint of the primary and db-backup image: hands the shared volumes (the socket
# directory and the backup repository) to the postgres user, then runs the base image's
# own entrypoint, which initialises an empty data volume and starts the server.
set -eu

if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres /var/run/postgresql /var/lib/pgbackrest
    chmod 2775 /var/run/postgresql
fi
exec docker-entrypoint.sh "$@"
