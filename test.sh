#!/usr/bin/env bash
# Every test: installs what is missing, builds the example plugins, runs the
# Rust crates' tests, the Swift suites (which use the built plugins), and the
# SDK conformance suite over every example plugin in every language.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh chromium   # the dashboard test drives a headless Chromium
export PLEXUS_SWIFT_CONFIG=${PLEXUS_SWIFT_CONFIG:-debug}

echo "== example plugins"
Plugins/build.sh

echo "== Rust SDK and agent tests"
cargo test --quiet --offline --manifest-path SDK/rust/plexus-agent/Cargo.toml
# The client example the Swift suites run: built here, not while timing-sensitive suites run in parallel.
cargo build --quiet --offline --example plexus_client --manifest-path SDK/rust/plexus-agent/Cargo.toml
cargo test --quiet --offline --manifest-path Plugins/keywords/Cargo.toml
cargo test --quiet --offline --manifest-path Plugins/cleaner/Cargo.toml
# The Rust fixture whose handler panics (Tests/PlexusHostTests/SDKHelperTests.swift), built before the suites run.
cargo build --quiet --offline --release --manifest-path Tests/Fixtures/panicky/Cargo.toml

echo "== Python client (SDK/python, offline parts; the live ones run in the Swift suites)"
python3 -m unittest discover -s SDK/python/tests

echo "== C client SDK: installed by SDK/c/install.sh, a program built against it with pkg-config"
prefix=$(mktemp -d)
SDK/c/install.sh "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror SDK/c/examples/plexus_call.c $(pkg-config --cflags --libs plexus-client) -Wl,-rpath,"$prefix/lib" -o "$prefix/plexus_call"
if out=$("$prefix/plexus_call" --socket "$prefix/no-host.sock" echo 2>&1); then echo "plexus_call succeeded without a host" >&2; exit 1; fi
grep -q "no Plexus host answers at $prefix/no-host.sock" <<<"$out" || { echo "unexpected: $out" >&2; exit 1; }
rm -rf "$prefix"; unset PKG_CONFIG_PATH

echo "== conformance suite (SDK/conformance) over every example plugin"
SDK/conformance/run.sh Plugins/*.so
# ...and it fails a handler that never returns, by name, instead of hanging.
spin=$(mktemp -d)
cc -shared -fPIC -Iinclude -ISDK/c Tests/Fixtures/spinner.c -o "$spin/spinner.so"
if out=$(PLEXUS_CONFORMANCE_TIMEOUT_S=1 SDK/conformance/run.sh "$spin/spinner.so"); then echo "the conformance suite passed a spinning handler" >&2; exit 1; fi
grep -q "capability spin.forever did not return within 1 s" <<<"$out" || { echo "unexpected: $out" >&2; exit 1; }
rm -rf "$spin"

echo "== fuzzing the frame decoder (libFuzzer, 20 s)"
Tests/Fuzz/run.sh 20

echo "== Swift tests"
swift build --build-tests
# The suites (the bundle `swift test --skip-build --disable-xctest` would
# run, started directly so that SwiftPM's own lock files stay out of it) get
# a TMPDIR of their own, which must be empty when they end: a test run
# leaves nothing behind in /tmp.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/plexus-test-run.XXXXXX")
TMPDIR="$scratch" "$(swift build --show-bin-path)/PlexusPackageTests.xctest" --testing-library swift-testing
if [ -n "$(ls -A "$scratch")" ]; then
    echo "test.sh: the Swift suites left files behind in $scratch:" >&2; ls -A "$scratch" >&2; exit 1
fi
rmdir "$scratch"

echo "== a Swift plugin in a package of its own (SDK/swift/example-plugin), built against the PlexusAgent product"
example=(swift build --package-path SDK/swift/example-plugin --scratch-path .build-example -c "$PLEXUS_SWIFT_CONFIG")
log=$(mktemp)
"${example[@]}" >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
rm -f "$log"
plugins=$(mktemp -d)
cp "$("${example[@]}" --show-bin-path)/libupper.so" "$plugins/upper.so"
plexus="$(swift build --show-bin-path)/plexus"
"$plexus" plugins inspect "$plugins/upper.so" | grep -q 'text.upper' || { echo "plugins inspect does not list text.upper" >&2; exit 1; }
SDK/conformance/run.sh "$plugins/upper.so"
for sandbox in process in-process; do
    out=$("$plexus" call text.upper --embedded --sandbox "$sandbox" --plugins "$plugins" --json '"shout"' 2>"$plugins/stderr") || true
    [ "$out" = '"SHOUT"' ] || { echo "the example plugin ($sandbox) answered '$out', expected '\"SHOUT\"':" >&2; cat "$plugins/stderr" >&2; exit 1; }
done
rm -rf "$plugins"
