#!/usr/bin/env bash
# Fuzzes the frame decoder with libFuzzer (clang from the Swift toolchain)
# for SECONDS (default 20), starting from valid frames written by the
# Swift tests' encoder, then the host's side of a worker's shared-memory
# ring (fuzz_ring.c: the worker's indices, flags and bytes set to anything)
# for as long. Fails on any crash, sanitizer report or mismatch.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-20}
clang=$(command -v clang || echo /opt/swift/usr/bin/clang)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build NAME SOURCES...: a libFuzzer binary $work/NAME, or the compiler's log and exit 1.
build() {
    local name=$1; shift
    if ! "$clang" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I"$root/include" \
        -I"$root/Sources/CPlexusInternal/include" "$@" -o "$work/$name" > "$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        exit 1
    fi
}

# fuzz NAME CORPUS WHAT: runs $work/NAME for $seconds; on failure prints the
# log's tail and "fuzz: WHAT failed", else the run's figures.
fuzz() {
    if ! "$work/$1" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$2" > "$work/$1.log" 2>&1; then
        tail -40 "$work/$1.log" >&2
        echo "fuzz: $3 failed (log above)" >&2
        exit 1
    fi
    grep -E "^(Done|stat::number_of_executed_units|stat::new_units_added)" "$work/$1.log"
}

build fuzz_wire "$root/Tests/Fuzz/fuzz_wire.c" "$root/Sources/CPlexus/wire.c"
mkdir -p "$work/corpus"
# Seeds: valid frames (plexus_wire.h layout), so the fuzzer starts past the checks.
python3 - "$work/corpus" <<'PY'
import struct, sys
def frame(kind, tkind, prio, sender, target, ctype, payload, flags=0):
    s, t, c = sender.encode(), target.encode(), ctype.encode()
    body = struct.pack("<BBBBI16s16s16sqHHHHI", kind, tkind, prio, flags, 0, b"\1" * 16, b"\2" * 16, b"\3" * 16, 0,
                       len(s), len(t), len(c), 0, len(payload))
    body += s + b"\0" + t + b"\0" + c + b"\0" + payload
    return b"PLXF" + bytes([1, 1, 0, 0]) + struct.pack("<I", len(body)) + body
seeds = [frame(1, 1, 1, "client:1", "echo", "application/json", b'{"hello":"world"}'),
         frame(2, 3, 3, "plexus", "", "", b""),
         frame(3, 2, 0, "a", "docs.summarized", "text/plain", b"x" * 300),
         frame(2, 3, 1, "textkit", "", "application/json", b'{"n":1}', flags=1),   # a partial answer (flag MORE)
         frame(5, 3, 2, "plexus", "", "", b"")]                                      # a CANCEL
for i, f in enumerate(seeds):
    open(f"{sys.argv[1]}/seed{i}", "wb").write(f)
PY
fuzz fuzz_wire "$work/corpus" "the frame decoder"

# The ring: the host's reads and writes against a worker that sets anything.
build fuzz_ring "$root/Tests/Fuzz/fuzz_ring.c" "$root/Sources/CPlexusInternal/ring.c" "$root/Sources/CPlexusInternal/fdpass.c" \
    "$root/Sources/CPlexus/wire.c"
mkdir -p "$work/ring"
# Seeds: publish a frame's worth of bytes and read it; a head far past the
# tail; a read index ahead of the write index; writes until full.
python3 - "$work/ring" <<'PY'
import struct, sys
def op(code, v): return bytes([code]) + struct.pack("<I", v & 0xffffffff)
frame = b"PLXF" + bytes([1, 1, 0, 0]) + struct.pack("<I", 0)
seeds = [op(3, len(frame)) + frame + op(0, len(frame)) + op(4, 4096),
         op(0, 1 << 20) + op(4, 100),
         op(1, 5000) + op(5, 300),
         op(5, 4000) + op(5, 4000) + op(1, 4000) + op(5, 4000) + op(2, 1)]
for i, s in enumerate(seeds):
    open(f"{sys.argv[1]}/seed{i}", "wb").write(s)
PY
fuzz fuzz_ring "$work/ring" "the ring reader"
