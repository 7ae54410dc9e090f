#!/usr/bin/env bash
# Cross-host request/reply through NATS, beside raw libnats request/reply on
# the same nats-server in the same run. Starts its own nats-server on a free
# loopback port and two hosts: a (no agents) and b (the pong agent, in-process),
# then prints, one call at a time (N calls each, default 20000, after 1000 warm-up):
#   raw_nats_rr_per_s / _p50_us  libnats request/reply between two connections
#   cluster_rr_per_s / _p50_us   a C client of host a calling agent pong0 on host b:
#                                socket -> a's router -> NATS -> b's router -> pong0 -> back
#   local_rr_per_s / _p50_us     the same client on host b calling pong0 there (no NATS), for scale
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
swift build -c release --product plexus >/dev/null
P="$(swift build -c release --show-bin-path)/plexus"
Benchmarks/build.sh >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
cc -std=c11 -O2 -Wall -Wextra -Iinclude -ISources/CPlexusInternal/include -ISDK/c Benchmarks/cluster/cluster_rr.c \
    SDK/c/plexus_client.c Sources/CPlexus/wire.c -o "$tmp/cluster_rr" -lnats
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="nats://127.0.0.1:$port"
nats-server -a 127.0.0.1 -p "$port" -js -sd "$tmp/js" >"$tmp/nats.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -qs "Server is ready" "$tmp/nats.log" && break; sleep 0.1; done
mkdir -p "$tmp/a" "$tmp/b"
cp Benchmarks/agents/pong0.so "$tmp/b/"
for n in a b; do
    "$P" run --plugins "$tmp/$n" --socket "$tmp/$n.sock" --store "$tmp/$n.db" --sandbox in-process --nats "$url" --node "$n" 2>"$tmp/$n.log" & pids+=($!)
done
for _ in $(seq 300); do "$P" nodes --socket "$tmp/a.sock" 2>/dev/null | grep -q '^b .* up ' && break; sleep 0.1; done
"$P" nodes --socket "$tmp/a.sock" | grep -q '^b .* up ' || { echo "cluster.sh: host a never heard host b" >&2; cat "$tmp"/*.log >&2; exit 1; }
n=${N:-20000}
"$tmp/cluster_rr" raw "$url" "$n"
"$tmp/cluster_rr" plexus "$tmp/a.sock" pong0 "$n"
CLUSTER_RR_NAME=local_rr "$tmp/cluster_rr" plexus "$tmp/b.sock" pong0 "$n"
