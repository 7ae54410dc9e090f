#!/usr/bin/env bash
# Builds the benchmark agents (two ping/pong pairs) and the floors' C programs
# into Benchmarks/agents/, or into the directory given as the argument.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="${1:-$root/Benchmarks/agents}"
mkdir -p "$out"
for k in 0 1; do
    cc -std=c11 -O2 -shared -fPIC -I"$root/include" -I"$root/SDK/c" -DAGENT_NAME="\"ping$k\"" -DPEER="\"pong$k\"" -DPING \
        "$root/Benchmarks/pingpong.c" -o "$out/ping$k.so"
    cc -std=c11 -O2 -shared -fPIC -I"$root/include" -I"$root/SDK/c" -DAGENT_NAME="\"pong$k\"" \
        "$root/Benchmarks/pingpong.c" -o "$out/pong$k.so"
done
cc -std=gnu11 -O2 -Wall -Wextra "$root/Benchmarks/floor.c" -o "$out/floor" -ldl
cc -std=c11 -O2 -Wall -Wextra -I"$root/include" -I"$root/Sources/CPlexusInternal/include" -I"$root/SDK/c" "$root/Benchmarks/client_rr.c" \
    "$root/SDK/c/plexus_client.c" "$root/Sources/CPlexus/wire.c" -o "$out/client_rr"
# The raw libnats floors of `plexus bench --cluster` (needs libnats-dev).
cc -std=c11 -O2 -Wall -Wextra -I"$root/include" -I"$root/Sources/CPlexusInternal/include" -I"$root/SDK/c" "$root/Benchmarks/cluster/cluster_rr.c" \
    "$root/SDK/c/plexus_client.c" "$root/Sources/CPlexus/wire.c" -o "$out/cluster_rr" -lnats
