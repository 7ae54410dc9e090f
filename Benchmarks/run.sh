#!/usr/bin/env bash
# Builds the host (release) and the benchmark agents, then runs `plexus bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product plexus >/dev/null
Benchmarks/build.sh
exec "$(swift build -c release --show-bin-path)/plexus" bench --agents Benchmarks/agents "$@"
