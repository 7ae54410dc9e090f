#!/usr/bin/env bash
# The cross-host lines alone: builds the host (release) and the benchmark
# agents, then runs `plexus bench --cluster`, which starts its own nats-server
# on a free loopback port and two hosts, and prints cluster_rr_per_s,
# cluster_rr_p50_us and cluster_publish_per_s beside raw libnats on the same
# server in the same run. Arguments go to `plexus bench` (e.g. --repetitions 3
# --cluster-round-trips 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product plexus >/dev/null
Benchmarks/build.sh
"$(swift build -c release --show-bin-path)/plexus" bench --agents Benchmarks/agents --cluster "$@"
