#!/usr/bin/env bash
# moss-wasm and explorer suites outside cargo's workspace runner:
#  1. builds the wasm verifier fresh (Debian rustc-web, -Zbuild-std; not
#     under CI=true unless WASM_EXPLORER_FRESH=1: only a NOTE reads its
#     bytes) and checks the committed explorer/pkg (what the gateway
#     embeds) was built from the checkout's sources (explorer/pkg/inputs.sha256);
#  2. runs the #[wasm_bindgen_test] tests in headless Chromium;
#  3. times the 10,000-link verification natively (same code, same profile),
#     for the page test's wasm/native ratio; not under CI=true unless
#     WASM_NATIVE_BENCH=1 (a figure, no test: its cold native release
#     build cost 158 s of CPU, docs/CI.md Session 8);
#  4. runs the playwright page tests (tests/page/explorer.mjs) against real
#     gateways; screenshots and bench.txt land in target/explorer-artifacts/;
#  5. the browser peer (peer/): builds it fresh (not committed), runs its
#     #[wasm_bindgen_test] tests in headless Chromium and its page tests
#     (tests/page/peer.mjs: pages meeting over WebRTC through a real
#     moss-signal); screenshot and figures in target/peer-artifacts/;
#  6. browsers meeting a native node (tests/page/native.mjs: two pages and a
#     moss-gateway with -webrtc in one mesh, a wrong-PSK page, browser →
#     native figures); screenshot and figures in target/peer-artifacts/;
#  7. native WebRTC through real Linux NATs (webrtc/scripts/nat-lab.sh, with
#     the gateway of step 6): two gateways behind twin NATs meet through a
#     moss-signal and STUN (the full cone and port-restricted pairs;
#     WEBRTC_LAB_KINDS picks others).
# Without the toolchain or browser it prints SKIP, and fails when CI=true.
# With --build it only builds (the pkgs, the test binaries and the bench,
# steps 1, 2, 3 and 5 without running anything), so scripts/test-all.sh can
# build them beside the workspace build; the full run then finds them built.
set -Eeuo pipefail
MODE=${1:-all}
# CI shows only this phase's log: every failure names its step and command.
STEP=setup
trap 'rc=$?; echo "FAIL: extra-wasm step \"$STEP\": \"$BASH_COMMAND\" exited $rc (line $LINENO)" >&2' ERR
# stage NAME: starts the named step (printed, and named by a failure).
stage() { STEP=$1; echo "== $1"; }
# logged CMD...: runs CMD with its output in a file, printed only if it fails
# (the builds are long and quiet when they work).
logged() {
  local log; log=$(mktemp)
  "$@" >"$log" 2>&1 || { local rc=$?; echo "-- output of $STEP (last 200 lines):"; tail -n 200 "$log"; rm -f "$log"; return $rc; }
  rm -f "$log"
}
# run_tests: this is not a --build run.
run_tests() { [ "$MODE" != --build ]; }
NO_RUN=()
run_tests || NO_RUN=(--no-run)
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
skip() {
  echo "SKIP: moss-wasm/explorer tests: $1 (run wasm/scripts/install-test-deps.sh)"
  [ "${CI:-}" = true ] && { echo "FAIL: CI=true and the browser suite cannot run" >&2; exit 1; }
  exit 0
}
for t in /usr/bin/rustc /usr/bin/clang-22 /usr/bin/chromium /usr/bin/chromedriver "${WASM_TOOLS_ROOT:-/opt/wasm-tools}/bin/wasm-bindgen"; do
  [ -x "$t" ] || skip "missing $t"
done
[ -d "$HERE/node_modules/playwright-core" ] || skip "missing npm playwright-core"
# The caller's environment, before env.sh switches to the wasm toolchain:
# the workspace's cargo runs in exactly this one (workspace_cargo), so it
# finds the same fingerprints as the workspace build and rebuilds nothing.
mapfile -d '' ORIG_ENV < <(env -0)
source "$HERE/scripts/env.sh"
# workspace_env CMD...: CMD in the caller's environment (the workspace
# toolchain, rustup's), in the repository root, on the shared target/.
workspace_env() { (cd "$ROOT" && env -i "${ORIG_ENV[@]}" "$@"); }
# workspace_cargo ARGS...: the workspace's cargo in that environment.
workspace_cargo() { workspace_env cargo "$@"; }
cd "$HERE"

stage "moss-wasm: build (wasm32, std from source)"
# explorer_fresh_wanted: the explorer pkg is built fresh. Its bytes feed only
# the NOTE below (the page tests run the committed pkg, and staleness is
# judged by the inputs' digest), and the wasm-bindgen test build compiles
# the same crate, so under CI=true it is not built unless
# WASM_EXPLORER_FRESH=1: its cold release build (LTO, wasm-opt) cost about
# 180 s of CPU (docs/CI.md, Session 9). Outside CI it is built as before.
explorer_fresh_wanted() { [ "${CI:-}" != true ] || [ "${WASM_EXPLORER_FRESH:-}" = 1 ]; }
FRESH=$CARGO_TARGET_DIR/explorer-pkg
if explorer_fresh_wanted; then
  logged bash scripts/build.sh "$FRESH"
else
  echo "NOTE: CI=true: the explorer pkg is not built fresh (WASM_EXPLORER_FRESH=1 builds it); its inputs' digest is still checked"
fi
if run_tests; then
  # Staleness is judged by the inputs, not the bytes: a different apt
  # revision of rustc-web or binaryen may emit other bytes from the same
  # sources, and that is not a stale pkg.
  WANT=$(wasm_inputs_digest)
  HAVE=$(cat "$ROOT/explorer/pkg/inputs.sha256" 2>/dev/null || echo none)
  if [ "$WANT" != "$HAVE" ]; then
    echo "FAIL: explorer/pkg was built from other sources (inputs $HAVE, checkout $WANT): run wasm/scripts/build.sh and commit explorer/pkg" >&2
    exit 1
  fi
fi
if run_tests && explorer_fresh_wanted; then
  SAME=yes
  for f in moss_wasm.js moss_wasm_bg.wasm; do
    cmp -s "$FRESH/$f" "$ROOT/explorer/pkg/$f" || SAME=no
  done
  if [ $SAME = no ]; then
    echo "NOTE: explorer/pkg is current (same inputs) but this toolchain emits other bytes:" \
      "$(/usr/bin/rustc -V); $(wasm-opt --version); $(wasm-bindgen --version);" \
      "committed $(stat -c %s "$ROOT/explorer/pkg/moss_wasm_bg.wasm") B, fresh $(stat -c %s "$FRESH/moss_wasm_bg.wasm") B." \
      "The page tests below run the committed pkg, the one the gateway embeds."
  fi
  echo "explorer/pkg inputs current, bytes identical to the fresh build: $SAME ($(stat -c %s "$FRESH/moss_wasm_bg.wasm") bytes wasm, $(gzip -9c "$FRESH/moss_wasm_bg.wasm" | wc -c) gzipped)"
fi

stage "moss-wasm: wasm-bindgen-test in headless Chromium"
# (debug profile: a --release test build mixes panic strategies under
# -Zbuild-std and fails with duplicate lang items)
wasm_cargo test --locked --target wasm32-unknown-unknown "$BUILD_STD" "${NO_RUN[@]}"

stage "moss-wasm: native verification benchmark"
# native_bench_wanted: the native twin is built and timed (see the top).
native_bench_wanted() { [ "${CI:-}" != true ] || [ "${WASM_NATIVE_BENCH:-}" = 1 ]; }
native_bench_wanted || echo "NOTE: CI=true: no native benchmark (WASM_NATIVE_BENCH=1 runs it); bench.txt gets the wasm figure alone"
native_cargo() {
  env -u CARGO_TARGET_DIR CARGO_TARGET_DIR="$CARGO_TARGET_DIR/native" \
    /usr/bin/cargo "$1" --locked --quiet --release --example verify_bench
}
PEER_PKG=$CARGO_TARGET_DIR/peer-pkg
peer_build() {
  stage "browser peer: build (wasm32, std from source)"
  logged bash peer/scripts/build.sh "$PEER_PKG"
}
peer_wasm_tests() {
  stage "browser peer: wasm-bindgen-test in headless Chromium"
  (source peer/scripts/env.sh && cd peer && wasm_cargo test --locked --target wasm32-unknown-unknown "$BUILD_STD" "${NO_RUN[@]}")
}
if ! run_tests; then
  native_bench_wanted && native_cargo build
  peer_build
  peer_wasm_tests
  exit 0
fi
NATIVE_BENCH_MS=
native_bench_wanted && NATIVE_BENCH_MS=$(native_cargo run)
export NATIVE_BENCH_MS

stage "explorer: page tests in Chromium"
# workspace_build PKG: the workspace toolchain (rustup), not the wasm one;
# nothing when scripts/test-all.sh's workspace build made it (MOSS_PREBUILT=1:
# a build of one package alone would resolve other features and rebuild).
workspace_build() {
  [ "${MOSS_PREBUILT:-}" = 1 ] && return 0
  workspace_cargo build --quiet -p "$@"
}
# The gateway and the CLI with WebRTC (feature `webrtc`, off in the
# workspace build so the C ABI stays OpenSSL-free): the native page test
# needs both, and the gateway serves the explorer tests as well. One cargo
# call builds them with the engine's webrtc test (scripts/webrtc-build.sh)
# and copies them to target/webrtc-bins/, where nothing overwrites them
# while tests run; scripts/test-all.sh runs it in its phase webrtc-build
# (MOSS_WEBRTC_PREBUILT=1: no cargo call here).
WEBRTC_BINS=$ROOT/target/webrtc-bins
if [ "${MOSS_WEBRTC_PREBUILT:-}" = 1 ]; then
  for b in moss-gateway moss; do
    [ -x "$WEBRTC_BINS/$b" ] || { echo "FAIL: MOSS_WEBRTC_PREBUILT=1 but no $WEBRTC_BINS/$b (scripts/webrtc-build.sh)" >&2; exit 1; }
  done
else
  workspace_env bash scripts/webrtc-build.sh
fi
export GATEWAY_BIN=$WEBRTC_BINS/moss-gateway EXPLORER_PKG=$ROOT/explorer/pkg ARTIFACTS=$ROOT/target/explorer-artifacts
node tests/page/explorer.mjs

peer_build
echo "peer wasm: $(stat -c %s "$PEER_PKG/moss_wasm_peer_bg.wasm") bytes, $(gzip -9c "$PEER_PKG/moss_wasm_peer_bg.wasm" | wc -c) gzipped"

peer_wasm_tests

stage "browser peer: page tests in Chromium (WebRTC over loopback, real moss-signal)"
workspace_build moss-signal
SIGNAL_BIN=$ROOT/target/debug/moss-signal PEER_PKG=$PEER_PKG ARTIFACTS=$ROOT/target/peer-artifacts \
  node tests/page/peer.mjs

stage "browser peer: pages meeting a native gateway over DataChannels (str0m)"
SIGNAL_BIN=$ROOT/target/debug/moss-signal GATEWAY_BIN=$WEBRTC_BINS/moss-gateway MOSS_BIN=$WEBRTC_BINS/moss \
  PEER_PKG=$PEER_PKG ARTIFACTS=$ROOT/target/peer-artifacts node tests/page/native.mjs

stage "native WebRTC through real NATs (webrtc/scripts/nat-lab.sh: natlab, the gateway built above)"
# Its own lab (prefix mwr-); the gateway and signal binaries of the page
# tests above, so it builds nothing. Skips visibly without network
# namespaces, fails under CI=true.
GATEWAY_BIN=$WEBRTC_BINS/moss-gateway SIGNAL_BIN=$ROOT/target/debug/moss-signal \
  bash "$ROOT/webrtc/scripts/nat-lab.sh"
