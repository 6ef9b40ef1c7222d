#!/usr/bin/env bash
# Smoke-runs every crate's cargo-fuzz targets (<crate>/fuzz, all members of
# the one fuzz workspace fuzz/Cargo.toml, so they share one lockfile and a
# shared crate is compiled once for all of them).
# Usage: scripts/fuzz-smoke.sh build   builds every target (cargo fuzz build)
#        scripts/fuzz-smoke.sh run     runs each built target for its share
#                                      of FUZZ_BUDGET seconds (default 120,
#                                      at least FUZZ_MIN_SECONDS=3 each)
#        scripts/fuzz-smoke.sh         both
# A run starts from the target's seed corpus (<crate>/fuzz/corpus/<target>,
# read only) in a scratch directory; a crash fails the run and leaves its
# input in target/fuzz-artifacts/<crate>/<target>/.
# Needs the nightly toolchain and cargo-fuzz (scripts/test-all.sh installs
# cargo-fuzz); CARGO_TARGET_DIR_FUZZ sets the target dir (target/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mode=${1:-all}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_FUZZ:-$ROOT/target/fuzz}
budget=${FUZZ_BUDGET:-120}
min=${FUZZ_MIN_SECONDS:-3}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')

crates=()
for manifest in */fuzz/Cargo.toml; do
  crates+=("${manifest%%/*}")
done
targets=()
for c in "${crates[@]}"; do
  for t in $(cd "$c" && cargo +nightly fuzz list); do
    targets+=("$c/$t")
  done
done
[ ${#targets[@]} -gt 0 ] || { echo "FAIL: no fuzz targets found"; exit 1; }

if [ "$mode" = build ] || [ "$mode" = all ]; then
  echo "-- building ${#targets[@]} fuzz targets of ${#crates[@]} crates (one workspace, $CARGO_TARGET_DIR)"
  for c in "${crates[@]}"; do
    (cd "$c" && cargo +nightly fuzz build)
  done
fi

if [ "$mode" = run ] || [ "$mode" = all ]; then
  each=$((budget / ${#targets[@]}))
  [ "$each" -ge "$min" ] || each=$min
  echo "-- running ${#targets[@]} fuzz targets for ${each}s each (budget ${budget}s)"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  failed=0
  for ct in "${targets[@]}"; do
    c=${ct%%/*} t=${ct#*/}
    bin=$CARGO_TARGET_DIR/$triple/release/$t
    [ -x "$bin" ] || { echo "FAIL: $ct is not built ($bin): run scripts/fuzz-smoke.sh build"; failed=1; continue; }
    corpus=$scratch/$c-$t
    mkdir -p "$corpus"
    seeds=()
    [ -d "$c/fuzz/corpus/$t" ] && seeds=("$c/fuzz/corpus/$t")
    artifacts=$ROOT/target/fuzz-artifacts/$c/$t/
    mkdir -p "$artifacts"
    log=$scratch/$c-$t.log
    if "$bin" -max_total_time="$each" -print_final_stats=1 -artifact_prefix="$artifacts" \
        "$corpus" "${seeds[@]}" >"$log" 2>&1; then
      runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
      echo "ok: $ct: ${runs:-?} runs in ${each}s, no crash"
    else
      tail -n 40 "$log"
      echo "FAIL: $ct crashed; input in $artifacts"
      failed=1
    fi
  done
  [ $failed = 0 ] || exit 1
  echo "fuzz smoke: ${#targets[@]} targets passed"
fi
