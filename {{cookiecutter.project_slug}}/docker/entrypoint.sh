#!/bin/sh
# Container entrypoint: apply database migrations, then replace this shell with the
# server (`exec`), so the server runs as PID 1 and receives SIGTERM itself.
# Without DATABASE_URL (or DB_HOST) the app uses its embedded SQLite file and migrates
# it on start.
# Set RUN_MIGRATIONS=false when a separate job (e.g. a Kubernetes Job) migrates instead.
set -eu

if [ -n "${DATABASE_URL:-}${DB_HOST:-}" ] && [ "${RUN_MIGRATIONS:-true}" != "false" ]; then
    echo "entrypoint: applying database migrations" >&2
    python -m {{ cookiecutter.package_name }}.database.migrate  # demo rows only if SEED_DEMO_DATA=true
fi

exec "$@"
