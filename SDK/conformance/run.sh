#!/usr/bin/env bash
# Builds the conformance checker and runs it over the given plugin files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT   # the checker is rebuilt each run: leave nothing behind
bin=$dir/plexus-conformance
cc -std=c11 -O1 -Wall -Wextra -Werror -I"$here/../../include" "$here/conformance.c" -o "$bin" -ldl
"$bin" "$@"
