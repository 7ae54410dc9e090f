#!/usr/bin/env bash
# Installs the Debian packages Plexus builds with, when any is missing.
# Swift itself is expected at /opt/swift or on PATH (it is on this machine kind).
# Extra Debian packages a caller needs (a benchmark's peers) may be named as arguments.
set -euo pipefail
need=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
dpkg -s libffi-dev >/dev/null 2>&1 || need+=(libffi-dev)
dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
dpkg -s libnats-dev >/dev/null 2>&1 || need+=(libnats-dev)      # the NATS C client: several hosts as one (PlexusCluster)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)   # the cluster tests start real servers
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v cargo >/dev/null 2>&1 || need+=(cargo)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v tmux >/dev/null 2>&1 || need+=(tmux)   # plexus top is tested in a real terminal (Tests/PlexusCLITests/TopTests.swift)
if [ "${CI:-}" = "true" ] || [ ${#need[@]} -gt 0 ]; then
    echo "install-deps: apt-get update${need:+; installing ${need[*]}}"
    export DEBIAN_FRONTEND=noninteractive
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    [ ${#need[@]} -eq 0 ] || $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The /metrics test parses the host's exposition with Prometheus's own Python parser.
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    python3 -m pip --version >/dev/null 2>&1 || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"; $sudo apt-get install -y -qq python3-pip >/dev/null; }
    echo "install-deps: pip install prometheus_client==0.26.0"
    python3 -m pip install -q prometheus_client==0.26.0 2>/dev/null \
        || python3 -m pip install -q --break-system-packages prometheus_client==0.26.0
fi
if ! command -v swift >/dev/null 2>&1; then
    [ -x /opt/swift/usr/bin/swift ] && echo "install-deps: add /opt/swift/usr/bin to PATH" >&2
    echo "install-deps: swift 6 is required and was not found on PATH" >&2
    exit 1
fi
