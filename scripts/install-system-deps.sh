#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the template's test suite drives for real:
# Chromium (browser tests), PostgreSQL (primary + replica), podman (image and compose
# runs), debootstrap (stand-in base images), prometheus (promtool). Skips what is
# already there; needs root or sudo.
set -euo pipefail

packages=(chromium postgresql podman runc debootstrap prometheus)
# Container names on compose networks (podman's CNI backend resolves them with dnsname).
packages+=(golang-github-containernetworking-plugin-dnsname)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "install-system-deps: no apt-get; install these yourself: ${missing[*]}" >&2
        exit 1
    fi
    echo "install-system-deps: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The packaged cluster is not used: tests start their own servers in temporary folders.
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters -h | awk '{print $1, $2}' | while read -r version cluster; do
            $sudo pg_ctlcluster "$version" "$cluster" stop 2>/dev/null || true
        done
    fi
fi

# Rootful podman inside a VM without systemd needs explicit limits and runc.
conf=/etc/containers/containers.conf
if [ ! -f "$conf" ]; then
    echo "install-system-deps: writing $conf for podman"
    $sudo mkdir -p /etc/containers
    printf '%s\n' '[containers]' 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]' \
        '[engine]' 'runtime = "runc"' | $sudo tee "$conf" >/dev/null
fi
