#!/usr/bin/env bash
# Ours and rust-libp2p gossipsub back to back on this machine: moss-bench
# echo and one-hop latency, then the libp2p pair (signed, strict
# validation) with the same payloads and window. Not part of CI (the
# libp2p build is large): run by hand, compare the ratios within one run.
#
#   benches/libp2p/run.sh [--duration S] [--sizes 64,1200]
#
# Environment: CARGO_TARGET_DIR for the workspace build (default target/),
# LIBP2P_TARGET_DIR for this crate's own (default benches/libp2p/target).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dur=1
sizes=64,1200
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) dur="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$root" && nice -n 10 cargo build --release -q -p moss-bench)
(cd "$here" && CARGO_TARGET_DIR="${LIBP2P_TARGET_DIR:-$here/target}" nice -n 19 cargo build --release -q)
bench="${CARGO_TARGET_DIR:-$root/target}/release/moss-bench"
libp2p="${LIBP2P_TARGET_DIR:-$here/target}/release/moss-bench-libp2p"
"$bench" echo --duration "$dur" --sizes "$sizes" --busy-poll-us 0
"$bench" latency --duration "$dur" --only portable --busy-poll-us 0
"$libp2p" --duration "$dur" --sizes "$sizes"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
