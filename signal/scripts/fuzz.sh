#!/usr/bin/env bash
# Runs moss-signal's fuzz target for SECONDS (default 30) with cargo-fuzz on
# the nightly toolchain. Needs: rustup nightly, cargo-fuzz
# (`cargo install cargo-fuzz`). Exits non-zero on a crash. The seed corpus
# lives in signal/fuzz/corpus/envelope; new finds go to a scratch copy.
set -euo pipefail
seconds="${1:-30}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-signal-fuzz}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp fuzz/corpus/envelope/* "$scratch/"
log="$scratch.log"
echo "== fuzz envelope for ${seconds}s"
if ! cargo +nightly fuzz run envelope "$scratch" -- \
    -max_total_time="$seconds" -max_len=4096 >"$log" 2>&1; then
  tail -n 40 "$log"
  echo "fuzz target envelope failed" >&2
  exit 1
fi
grep -E "^Done" "$log" || true
rm -f "$log"
