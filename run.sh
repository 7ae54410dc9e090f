#!/usr/bin/env bash
# The main job: install what is missing, build the host and every plugin,
# start a host, and run workflows/weather-report.yaml — five sandboxed agents
# in C, Rust and Swift turn four years of Seattle's daily weather (NOAA, via
# vega_datasets; data/seattle-weather/SOURCE.md) into report/report.html
# (SVG chart inline), report/report.md and report/chart.svg, with the run's
# progress drawn in the terminal.
#
#   ./run.sh            the job; the host serves its live dashboard meanwhile
#                       (the address is printed; PLEXUS_HTTP_PORT picks the
#                       port, default any free one)
#   ./run.sh --watch    the job at a pace a person can follow on the dashboard
#                       (each month's cleaning waits 150 ms), and the host and
#                       its dashboard stay up afterwards until Ctrl-C
#   ./run.sh --crash    the job, then again with the host killed (SIGKILL)
#                       halfway and started again: the run resumes from its
#                       checkpoints into report-resumed/, which must be
#                       byte-identical to report/
#   ./run.sh --cluster  the job, then again with its crew split over two hosts
#                       joined by a nats-server (JetStream) started for it:
#                       host a runs collector, analyst and reporter and the
#                       workflow, host b the cleaner and the visualiser; the
#                       run's tasks for b's capabilities go through JetStream
#                       and run there, into report-cluster/, which must be
#                       byte-identical to report/
set -euo pipefail
cd "$(dirname "$0")"
crash=false
watch=false
cluster=false
case "${1:-}" in
    --crash) crash=true ;;
    --watch) watch=true ;;
    --cluster) cluster=true ;;
    "") ;;
    *) echo "usage: ./run.sh [--watch | --crash | --cluster]" >&2; exit 2 ;;
esac
scripts/install-deps.sh
echo "run.sh: building the host (release; a few minutes on a fresh clone, seconds after that)"
# Progress in tenths of the build's steps, every error, and the last line.
swift build -c release --product plexus 2>&1 | awk '
    match($0, /^\[[0-9]+\/[0-9]+\]/) { split(substr($0, 2, RLENGTH - 2), n, "/"); t = int(n[1] * 10 / n[2])
        if (t > shown) { shown = t; printf "run.sh:   %d%% (%s steps)\n", t * 10, n[2]; fflush() }; next }
    /error:|[Bb]uild.*complete/ { print; fflush() }' || { echo "run.sh: the host did not build (errors above)" >&2; exit 1; }
plexus=$(swift build -c release --show-bin-path)/plexus
Plugins/build.sh | grep -v "^build.sh: built" || true

state=$(mktemp -d "${TMPDIR:-/tmp}/plexus-run.XXXXXX")
sock="$state/plexus.sock"
export PLEXUS_SOCKET="$sock"
# Workers see only what plexus.yaml grants: the collector reads data/.
printf 'plugins:\n  collector:\n    filesystem: { read: ["%s/data"] }\n' "$PWD" > "$state/plexus.yaml"
export PLEXUS_CONFIG="$state/plexus.yaml"
host=""
lives=0
start_host() {
    lives=$((lives + 1))
    "$plexus" run --store "$state/plexus.db" --http "127.0.0.1:${PLEXUS_HTTP_PORT:-0}" 2>>"$state/host.log" &
    host=$!
    for _ in $(seq 200); do
        # The HTTP server starts after the socket: wait for both.
        if [ -S "$sock" ] && [ "$(grep -c 'serving HTTP at' "$state/host.log")" -ge "$lives" ] && "$plexus" agents >/dev/null 2>&1; then
            dashboard=$(grep -o 'serving HTTP at http://[^ ]*' "$state/host.log" | tail -1 | sed 's/serving HTTP at //')
            echo "run.sh: the dashboard (live while the host runs): $dashboard"
            return
        fi
        sleep 0.05
    done
    echo "run.sh: the host did not start:" >&2; cat "$state/host.log" >&2; exit 1
}
stop_host() { [ -z "$host" ] || { kill -INT "$host" 2>/dev/null; wait "$host" 2>/dev/null || true; host=""; }; }
cluster_pids=()
stop_cluster() { for p in "${cluster_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
                 for p in "${cluster_pids[@]}"; do wait "$p" 2>/dev/null || true; done; cluster_pids=(); }
trap 'stop_host; stop_cluster; rm -rf "$state"' EXIT
input="{\"path\": \"$PWD/data/seattle-weather/seattle-weather.csv\"}"
$watch && input="{\"path\": \"$PWD/data/seattle-weather/seattle-weather.csv\", \"pace_ms\": 150}"

start_host
echo; echo "== the workflow (plexus workflow graph workflows/weather-report.yaml)"
"$plexus" workflow graph workflows/weather-report.yaml
echo; echo "== running it"
"$plexus" workflow run workflows/weather-report.yaml --input "$input" --out report
echo; echo "== what happened (plexus tasks list, plexus events --kind workflow)"
"$plexus" tasks list --limit 8
"$plexus" events --kind workflow. --last 6
echo; echo "run.sh: the report is report/report.html (open it in a browser) and report/report.md"
if $watch; then
    echo "run.sh: the host and its dashboard ($dashboard) stay up; Ctrl-C stops them"
    wait "$host" || true
    host=""
fi

if $crash; then
    echo; echo "== again, with the host killed halfway"
    id=$("$plexus" workflow run workflows/weather-report.yaml --input "$input")
    sleep 1
    kill -KILL "$host"; wait "$host" 2>/dev/null || true; host=""
    echo "run.sh: host killed with SIGKILL during run $id"
    start_host
    echo "run.sh: host started again; it resumes the run from its checkpoints"
    "$plexus" workflow status "$id" --out report-resumed
    "$plexus" events --kind workflow.step.finished --last 100 | grep -c "$id" | sed 's/^/run.sh: steps finished in total, over both lives of the host: /'
    for f in report.html report.md chart.svg; do
        cmp "report/$f" "report-resumed/$f" || { echo "run.sh: report-resumed/$f differs from report/$f" >&2; exit 1; }
    done
    echo "run.sh: report-resumed/ is byte-identical to report/"
fi

if $cluster; then
    stop_host
    echo; echo "== again, with the crew split over two hosts joined by NATS"
    command -v nats-server >/dev/null || { echo "run.sh: nats-server is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
    nats-server -a 127.0.0.1 -p -1 -js -sd "$state/jetstream" >"$state/nats.log" 2>&1 & cluster_pids+=($!)
    for _ in $(seq 200); do grep -qs "Server is ready" "$state/nats.log" && break; sleep 0.05; done
    url=$(grep -o 'Listening for client connections on [0-9.]*:[0-9]*' "$state/nats.log" | sed 's/.* on /nats:\/\//')
    [ -n "$url" ] || { echo "run.sh: nats-server did not start:" >&2; cat "$state/nats.log" >&2; exit 1; }
    mkdir -p "$state/plugins-a" "$state/plugins-b"
    for p in collector analyst reporter; do ln -s "$PWD/Plugins/$p.so" "$state/plugins-a/"; done
    for p in cleaner visualiser; do ln -s "$PWD/Plugins/$p.so" "$state/plugins-b/"; done
    for n in a b; do
        "$plexus" run --nats "$url" --node "$n" --plugins "$state/plugins-$n" --socket "$state/$n.sock" \
            --store "$state/$n.db" 2>"$state/host-$n.log" & cluster_pids+=($!)
    done
    for _ in $(seq 400); do
        "$plexus" nodes --socket "$state/a.sock" 2>/dev/null | grep -q '^b .* up ' && break; sleep 0.05
    done
    "$plexus" nodes --socket "$state/a.sock" | grep -q '^b .* up ' || { echo "run.sh: host a never heard host b:" >&2; cat "$state"/host-*.log >&2; exit 1; }
    echo "run.sh: nats-server at $url; hosts a and b (plexus nodes --socket a.sock):"
    "$plexus" nodes --socket "$state/a.sock"
    echo; echo "== running it on host a"
    "$plexus" workflow run workflows/weather-report.yaml --socket "$state/a.sock" --input "$input" --out report-cluster
    echo; echo "== where its tasks ran (plexus tasks list on host a, where they were submitted: AGENT is node/agent)"
    "$plexus" tasks list --socket "$state/a.sock" --limit 8
    for f in report.html report.md chart.svg; do
        cmp "report/$f" "report-cluster/$f" || { echo "run.sh: report-cluster/$f differs from report/$f" >&2; exit 1; }
    done
    echo "run.sh: report-cluster/ is byte-identical to report/"
fi
