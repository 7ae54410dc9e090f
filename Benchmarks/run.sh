#!/usr/bin/env bash
# Builds the host (release) and the benchmark agents, then runs `plexus bench`,
# which measures every line beside its floor in the same run — the Erlang/OTP
# ping-pong beside inproc_rr_per_s too (it runs it itself when `erl` is on
# PATH, so erlang-base is installed here).
# Then the cross-host lines, `plexus bench --cluster` (its own nats-server and
# two hosts), unless the arguments pick one group of lines (--*-only, --cluster).
# Arguments go to `plexus bench` (e.g. --repetitions 3).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh erlang-base
swift build -c release --product plexus >/dev/null
Benchmarks/build.sh
P="$(swift build -c release --show-bin-path)/plexus"
"$P" bench --agents Benchmarks/agents "$@"
case " $* " in
    *-only* | *" --cluster "*) ;;
    *) "$P" bench --agents Benchmarks/agents --cluster "$@" ;;
esac
