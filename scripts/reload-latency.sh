#!/usr/bin/env bash
# How long a hot upgrade takes, from a plugin file's arrival in Plugins/ to
# the new version answering calls: the median of N upgrades (default 20).
#   scripts/reload-latency.sh [N]
# Builds two versions of Tests/Fixtures/versioned.c, starts `plexus run` on
# a scratch directory, and copies the versions in turn over the running one
# (cp writes in place, as an operator would) while a Python client calls
# versioned.version in a loop. Each figure: from the end of the copy to the
# first answer from the new version (the watcher's debounce, 50 ms by
# default, included). Needs a debug build (swift build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-20}
work=$(mktemp -d)
trap 'kill "$host" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/Plugins"
for v in 1 2; do
    cc -std=c11 -shared -fPIC -O1 -I"$root/include" -I"$root/SDK/c" -DVERSION="\"$v.0.0\"" \
       "$root/Tests/Fixtures/versioned.c" -o "$work/v$v.so"
done
cp "$work/v1.so" "$work/Plugins/versioned.so"
"$root/.build/debug/plexus" run --plugins "$work/Plugins" --socket "$work/plexus.sock" --store "$work/plexus.db" 2>"$work/host.log" &
host=$!
for _ in $(seq 1 600); do grep -q "host up" "$work/host.log" 2>/dev/null && break; sleep 0.1; done
PYTHONPATH="$root/SDK/python" python3 - "$work" "$n" <<'PY'
import json, shutil, statistics, sys, time
from plexus_client import Client
work, n = sys.argv[1], int(sys.argv[2])
took = []
with Client(path=work + "/plexus.sock") as c:
    for i in range(n):
        want = "2.0.0" if i % 2 == 0 else "1.0.0"
        shutil.copyfile(f"{work}/v{want[0]}.so", f"{work}/Plugins/versioned.so")   # in place, like cp
        arrived = time.monotonic()
        while json.loads(c.call("versioned.version", b""))["version"] != want:
            pass
        took.append((time.monotonic() - arrived) * 1000)
        time.sleep(0.3)   # the old version drains and stops before the next file
print("upgrade, file arrival to new version serving, %d upgrades: median %.0f ms (min %.0f, max %.0f)"
      % (n, statistics.median(took), min(took), max(took)))
PY
