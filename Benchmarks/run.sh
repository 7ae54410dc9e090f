#!/usr/bin/env bash
# Builds the host (release) and the benchmark agents, runs `plexus bench`,
# then the Erlang/OTP ping-pong yardstick in the same run, so the figures
# beside each other were measured on the same machine at the same time.
# Arguments go to `plexus bench` (e.g. --repetitions 3).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh erlang-base
swift build -c release --product plexus >/dev/null
Benchmarks/build.sh
"$(swift build -c release --show-bin-path)/plexus" bench --agents Benchmarks/agents "$@"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
erlc -o "$work" Benchmarks/peers/erlang_pingpong.erl
erl -noshell -pa "$work" -s erlang_pingpong main -s init stop
