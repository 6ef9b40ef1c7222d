#!/usr/bin/env bash
# Runs each moss-discovery fuzz target for SECONDS (default 30) with
# cargo-fuzz on the nightly toolchain. Needs: rustup nightly, cargo-fuzz
# (`cargo install cargo-fuzz`). Exits non-zero on the first crash.
set -euo pipefail
seconds="${1:-30}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-discovery-fuzz}"
for target in udp_tracker_response http_tracker_response beacon; do
  mkdir -p "fuzz/corpus/$target"
  log="$(mktemp)"
  echo "== fuzz $target for ${seconds}s"
  if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -max_len=4096 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed" >&2
    exit 1
  fi
  grep -E "^Done" "$log" || true
  rm -f "$log"
done
