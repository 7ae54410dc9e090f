#!/usr/bin/env bash
# Builds plexus-worker, the sandboxed worker helper, with cc and no language
# runtime, into SwiftPM's bin directory beside the plexus executable (where
# the host looks for it). libseccomp and libffi are linked statically: the
# dynamic loader then has only libc to map at every worker start.
# Usage: Sources/plexus-worker/build.sh [debug|release]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
config=${1:-debug}
bin=$(cd "$root" && swift build -c "$config" --show-bin-path)
mkdir -p "$bin"
opt=-O2; [ "$config" = debug ] && opt="-O1 -g"
cc -std=gnu11 $opt -Wall -Wextra -Werror -I"$root/include" -I"$root/Sources/CPlexusInternal/include" -I"$root/Sources/CPlexusFFI/include" -I"$root/Sources/CPlexusPOSIX/include" \
    "$root"/Sources/plexus-worker/*.c "$root/Sources/CPlexus/wire.c" "$root/Sources/CPlexusInternal/contract.c" "$root/Sources/CPlexusInternal/ring.c" "$root/Sources/CPlexusFFI/ffi_call.c" \
    -o "$bin/plexus-worker.tmp" -Wl,-Bstatic -lseccomp -lffi -Wl,-Bdynamic -ldl -lpthread
mv -f "$bin/plexus-worker.tmp" "$bin/plexus-worker"
echo "built $bin/plexus-worker"
