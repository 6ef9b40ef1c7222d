#!/usr/bin/env bash
# Builds libmoss.so in release mode and runs the C ABI benchmark.
# Usage: bash ffi/benches/run.sh   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -p moss-ffi --manifest-path "$root/Cargo.toml"
out="$target/release/publish_bench"
cc -std=c11 -O2 -Wall -Wextra -I "$root/ffi/include" "$root/ffi/benches/publish_bench.c" \
  -L "$target/release" -lmoss -o "$out"
nproc_info="$(nproc) cores"
echo "machine: $(uname -sr), $nproc_info, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
LD_LIBRARY_PATH="$target/release" "$out"
