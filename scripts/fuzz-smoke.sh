#!/usr/bin/env bash
# Smoke-runs every crate's fuzz targets (<crate>/fuzz, all members of the
# one fuzz workspace fuzz/Cargo.toml: one lockfile, one resolve).
# Usage: scripts/fuzz-smoke.sh build   builds every target in one cargo call
#        scripts/fuzz-smoke.sh run     runs each built target for its share
#                                      of FUZZ_BUDGET seconds (default 120,
#                                      at least FUZZ_MIN_SECONDS=3 each)
#        scripts/fuzz-smoke.sh         both
# The build instruments the code as `cargo fuzz build` (cargo-fuzz 0.13)
# does: libFuzzer's coverage counters, comparison tracing, --cfg fuzzing,
# debug assertions and overflow checks. It differs in three ways, to cost
# less CPU (docs/CI.md, Session 8): one `cargo +nightly build --workspace`
# for all targets instead of one call per crate; the `smoke` profile of
# fuzz/Cargo.toml (no debug info, opt-level 1, 16 codegen units); and no
# AddressSanitizer, since the
# fuzzed code is safe Rust. FUZZ_SANITIZER=address builds with it.
# A run starts from the target's seed corpus (<crate>/fuzz/corpus/<target>,
# read only) in a scratch directory; a crash fails the run and leaves its
# input in target/fuzz-artifacts/<crate>/<target>/ (replay it: the target's
# binary with the file as its argument). Needs the nightly toolchain, not
# cargo-fuzz (`cd mesh && cargo +nightly fuzz run datagram` still works);
# CARGO_TARGET_DIR_FUZZ sets the target dir (target/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mode=${1:-all}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_FUZZ:-$ROOT/target/fuzz}
budget=${FUZZ_BUDGET:-120}
min=${FUZZ_MIN_SECONDS:-3}
sanitizer=${FUZZ_SANITIZER:-none}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
manifest=$ROOT/fuzz/Cargo.toml

# Every bin target of the fuzz workspace, as <crate>/<target>.
targets=()
mapfile -t targets < <(cargo +nightly metadata --manifest-path "$manifest" --no-deps --format-version 1 |
  python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    crate = os.path.relpath(os.path.dirname(os.path.dirname(p["manifest_path"])))
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(crate + "/" + t["name"])
' | LC_ALL=C sort)
[ ${#targets[@]} -gt 0 ] || { echo "FAIL: no fuzz targets found"; exit 1; }
crates=$(printf '%s\n' "${targets[@]%%/*}" | sort -u | wc -l)

# The flags cargo-fuzz 0.13 passes in RUSTFLAGS for a build (`--target` is
# given, so build scripts and proc macros are not instrumented); debug
# assertions and overflow checks come from the profile.
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  --cfg fuzzing
)
[[ $triple != *-linux-* ]] || flags+=(-Cllvm-args=-sanitizer-coverage-stack-depth)
case $sanitizer in
  none) ;;
  address)
    flags+=(-Zsanitizer=address)
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0
    ;;
  *) echo "FAIL: FUZZ_SANITIZER=$sanitizer (none or address)"; exit 1 ;;
esac

if [ "$mode" = build ] || [ "$mode" = all ]; then
  echo "-- building ${#targets[@]} fuzz targets of $crates crates in one cargo call (profile smoke, sanitizer $sanitizer, $CARGO_TARGET_DIR)"
  RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" cargo +nightly build --manifest-path "$manifest" \
    --workspace --bins --profile smoke --target "$triple"
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
    bin=$CARGO_TARGET_DIR/$triple/smoke/$t
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
      echo "FAIL: $ct crashed; input in $artifacts (replay: $bin FILE)"
      failed=1
    fi
  done
  [ $failed = 0 ] || exit 1
  echo "fuzz smoke: ${#targets[@]} targets passed"
fi
