#!/usr/bin/env bash
# Runs every Moss test on a fresh machine: installs what the tests need,
# smoke-runs each fuzz target, then runs the whole workspace suite.
# Usage: scripts/test-all.sh   (FUZZ_SECONDS=0 skips the fuzz smoke runs)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies"
need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v python3 >/dev/null || need_apt+=(python3)
command -v node >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
for s in */scripts/install-test-deps.sh; do
  [ -f "$s" ] && bash "$s"
done

FUZZ_SECONDS=${FUZZ_SECONDS:-10}
if [ "$FUZZ_SECONDS" != 0 ] && rustup toolchain list | grep -q nightly; then
  echo "== fuzz smoke runs (${FUZZ_SECONDS}s per target)"
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  export CARGO_TARGET_DIR_FUZZ="$PWD/target/fuzz"
  for dir in */fuzz; do
    [ -f "$dir/Cargo.toml" ] || continue
    for t in $(cd "$dir/.." && cargo +nightly fuzz list); do
      echo "-- $dir $t"
      (cd "$dir/.." && CARGO_TARGET_DIR="$CARGO_TARGET_DIR_FUZZ" \
        cargo +nightly fuzz run "$t" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 2>&1 | tail -n 2)
    done
  done
elif [ "$FUZZ_SECONDS" != 0 ]; then
  echo "== no nightly toolchain: fuzz targets are exercised by the proptests instead"
fi

echo "== workspace tests"
cargo build --workspace --all-targets
cargo test --workspace --doc
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo nextest run --workspace --no-fail-fast

# Suites outside cargo's test runner (browser, real NATs, Python host):
# each crate that has one ships <crate>/scripts/extra-tests.sh.
for s in */scripts/extra-tests.sh; do
  [ -f "$s" ] || continue
  echo "== extra tests: $s"
  bash "$s"
done
