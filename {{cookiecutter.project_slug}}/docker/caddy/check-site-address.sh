#!/bin/sh
# `make up` runs this first: a SITE_ADDRESS that is not a host name would still parse
# as a Caddyfile site address (a space makes two sites, a path is silently dropped),
# and ACME would then fail minutes later in the proxy's log. One line, before anything starts.
site=${SITE_ADDRESS:-$(sed -n 's/^[[:space:]]*SITE_ADDRESS=//p' .env 2>/dev/null | tail -n 1)}
label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
if [ -z "$site" ]; then
    echo "SITE_ADDRESS is not set: add SITE_ADDRESS=localhost (or the domain that points at this server, e.g. app.example.com) to .env" >&2
    exit 1
fi
if ! printf '%s\n' "$site" | grep -Eqx "localhost|$label(\.$label)+"; then
    echo "SITE_ADDRESS='$site' is not a host name: set it in .env to localhost or a domain such as app.example.com (no scheme, port, path or spaces)" >&2
    exit 1
fi
