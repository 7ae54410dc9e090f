#!/usr/bin/env bash
# Builds every example plugin into Plugins/<name>.so:
#   C      Plugins/<name>/*.c        cc -shared -fPIC against include/ and SDK/c
#   Rust   Plugins/<name>/Cargo.toml cargo build --release --offline (std only)
#   Swift  Plugins/<name>/*.swift    the <name> dynamic product in Package.swift
# PLEXUS_SWIFT_CONFIG=debug|release (default release) picks the Swift build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/Plugins"
swift_config=${PLEXUS_SWIFT_CONFIG:-release}
cd "$root"

for dir in Plugins/*/; do
    name=$(basename "$dir")
    if compgen -G "$dir*.c" >/dev/null; then
        echo "build.sh: C      $name"
        cc -std=c11 -O2 -Wall -Wextra -Werror -shared -fPIC -Iinclude -ISDK/c "$dir"*.c -o "$out/$name.so" -lm
    elif [ -f "$dir/Cargo.toml" ]; then
        echo "build.sh: Rust   $name"
        cargo build --quiet --release --offline --manifest-path "$dir/Cargo.toml"
        cp "$dir/target/release/lib$name.so" "$out/$name.so"
    elif compgen -G "$dir*.swift" >/dev/null; then
        echo "build.sh: Swift  $name ($swift_config)"
        log=$(mktemp)
        swift build --configuration "$swift_config" --product "$name" >"$log" 2>&1 || { cat "$log"; exit 1; }
        rm -f "$log"
        bin=$(swift build --configuration "$swift_config" --show-bin-path)
        cp "$bin/lib$name.so" "$out/$name.so"
    fi
done
ls -1 "$out"/*.so | sed 's|^|build.sh: built |'
