#!/usr/bin/env bash
# Installs the C client SDK: its header beside plexus.h, libplexus_client
# (static and shared; libc only) and a pkg-config file, so a program builds with
#   cc prog.c $(pkg-config --cflags --libs plexus-client)
# Usage: SDK/c/install.sh [PREFIX]   (default /usr/local; $DESTDIR is honoured)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
prefix=${1:-/usr/local}
inc="${DESTDIR:-}$prefix/include" lib="${DESTDIR:-}$prefix/lib"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
for src in SDK/c/plexus_client.c Sources/CPlexus/wire.c; do
    cc -std=c11 -O2 -fPIC -Wall -Wextra -Werror -I"$root/include" -I"$root/Sources/CPlexusInternal/include" -I"$root/SDK/c" -c "$root/$src" -o "$build/$(basename "$src" .c).o"
done
ar rcs "$build/libplexus_client.a" "$build"/*.o
cc -shared -Wl,-soname,libplexus_client.so.1 -o "$build/libplexus_client.so.1" "$build"/*.o
install -d "$inc" "$lib/pkgconfig"
install -m 644 "$root/include/plexus.h" "$root/include/plexus_wire.h" "$root/SDK/c/plexus_client.h" "$root/SDK/c/plexus_agent.h" "$inc/"
install -m 644 "$build/libplexus_client.a" "$lib/"
install -m 755 "$build/libplexus_client.so.1" "$lib/"
ln -sf libplexus_client.so.1 "$lib/libplexus_client.so"
version=$(sed -n 's/^#define PLEXUS_ABI_MAJOR \([0-9]*\).*/\1/p' "$root/include/plexus.h").$(sed -n 's/^#define PLEXUS_ABI_MINOR \([0-9]*\).*/\1/p' "$root/include/plexus.h")
cat > "$lib/pkgconfig/plexus-client.pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: plexus-client
Description: Call Plexus agents, publish, subscribe and serve as an agent over a running host's socket
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lplexus_client
PC
echo "install.sh: installed plexus_client.h, plexus.h, plexus_wire.h, plexus_agent.h into $inc; libplexus_client.{a,so} and pkgconfig/plexus-client.pc into $lib"
