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
  echo "== fuzz $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY)" || true
  test "${PIPESTATUS[0]}" -eq 0
done
