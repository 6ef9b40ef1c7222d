#!/usr/bin/env bash
# One run, one table (issue #15): builds moss-bench (release, `webrtc`
# feature) and the rust-libp2p gossipsub pair (this crate), then runs in
# one moss-bench process the `compare` scenario (the one-hop latency limit
# line, ours per backend, and this crate's binary as a child process with
# the same window and sizes) and the `webrtc` scenario (DataChannel beside
# UDP). With --all it runs `moss-bench all` instead, which includes both,
# and writes the generated section of BENCHMARKS.md (--out). Not part of
# CI (the libp2p build is large): run by hand.
#
#   benches/libp2p/run.sh [--duration S] [--sizes 64,1200] [--only portable] [--all]
#
# Environment: CARGO_TARGET_DIR for the workspace build (default target/),
# LIBP2P_TARGET_DIR for this crate's own (default benches/libp2p/target).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dur=1
sizes=64,1200
only=()
all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) dur="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --only) only=(--only "$2"); shift 2 ;;
    --all) all=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
(cd "$root" && nice -n 10 cargo build --release -q -p moss-bench --features webrtc)
(cd "$here" && CARGO_TARGET_DIR="${LIBP2P_TARGET_DIR:-$here/target}" nice -n 19 cargo build --release -q)
bench="${CARGO_TARGET_DIR:-$root/target}/release/moss-bench"
libp2p="${LIBP2P_TARGET_DIR:-$here/target}/release/moss-bench-libp2p"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ "$all" = 1 ]; then
  "$bench" all --duration "$dur" --sizes "$sizes" --libp2p "$libp2p" --out "$root/BENCHMARKS.md" "${only[@]}"
else
  "$bench" compare webrtc --duration "$dur" --sizes "$sizes" --libp2p "$libp2p" "${only[@]}"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
