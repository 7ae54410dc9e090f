#!/usr/bin/env bash
# The main job: install what is missing, build the host and every example
# plugin, start a host, and push real documents (the licence texts every
# Debian system ships) through agents written in three languages:
#   summarizer (Swift) --request--> text.stats (C) and text.keywords (Rust)
#   summarizer --publish docs.summarized--> textkit (C), which keeps a catalogue
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
echo "run.sh: building the host (release)"
swift build -c release --product plexus 2>&1 | grep -E "error|Compiling plexus|Build complete" || true
plexus=$(swift build -c release --show-bin-path)/plexus
[ -x "$plexus" ] || { echo "run.sh: the host did not build" >&2; exit 1; }
Sources/plexus-worker/build.sh release >/dev/null
Plugins/build.sh

sock=$(mktemp -u "${TMPDIR:-/tmp}/plexus-run.XXXXXX.sock")
store=$(mktemp -d "${TMPDIR:-/tmp}/plexus-run.XXXXXX")
"$plexus" run --socket "$sock" --store "$store/plexus.db" &
host=$!
trap 'kill -INT $host 2>/dev/null; wait $host 2>/dev/null || true; rm -rf "$store"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

echo; echo "== plugins loaded by the running host"
"$plexus" plugins list --socket "$sock"
docs=${PLEXUS_DOCS:-/usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/MPL-2.0}
for doc in $docs; do
    echo; echo "== report.summarize $doc"
    "$plexus" call report.summarize --file "$doc" --socket "$sock" --pretty
done
echo; echo "== docs.catalog (what the C agent heard on docs.summarized)"
"$plexus" call docs.catalog --socket "$sock" --pretty
echo; echo "== typed exports called through libffi"
"$plexus" call math.pow --json '{"base":2,"exponent":0.5}' --socket "$sock"; echo
"$plexus" call text.levenshtein --json '["kitten","sitting"]' --socket "$sock"; echo
echo; echo "== the agents, each plugin in its own sandboxed worker process"
"$plexus" agents --socket "$sock"
