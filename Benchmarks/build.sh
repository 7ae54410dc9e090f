#!/usr/bin/env bash
# Builds the benchmark agents (two ping/pong pairs) into Benchmarks/agents/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/Benchmarks/agents"
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
