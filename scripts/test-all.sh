#!/usr/bin/env bash
# Runs every Moss test on a fresh machine: installs what the builds need,
# then runs the suites as phases, the independent ones in parallel, the
# rest of the install (test tools, browsers) beside the builds (see
# docs/CI.md for what runs where and how long it takes). A phase's output
# is kept in target/ci-logs/PHASE.log and printed whole when the phase
# ends; a table of every phase's wall time and CPU seconds closes the run.
# Usage: scripts/test-all.sh [PHASE...]   (no PHASE: all; --list: names)
#   FUZZ_BUDGET=S   total seconds of fuzz smoke runs (default 120; 0 skips)
# Exit code: 0 when every selected phase passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export ROOT

# ---- the phases: NAME, the phases it runs after, the command ----------
# install_build_deps: what the cargo builds need (a C compiler for ring's
# and OpenSSL's build scripts, OpenSSL's headers and pkg-config), idempotent.
# The builds start after it, beside install_deps.
install_build_deps() {
  command -v cc >/dev/null || {
    apt-get update -qq && apt-get install -y -qq gcc
  }
  bash webrtc/scripts/install-test-deps.sh
}
# install_deps: everything else later phases need (test tools, browsers,
# wasm toolchain, npm packages), idempotent. On a fresh machine it is
# mostly downloads and one `cargo install` (wasm-bindgen-cli), so the
# builds run beside it instead of after it.
install_deps() {
  local need_apt=()
  command -v valgrind >/dev/null || need_apt+=(valgrind)
  command -v python3 >/dev/null || need_apt+=(python3)
  command -v node >/dev/null || need_apt+=(nodejs npm)
  if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
  fi
  command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
  local s
  for s in */scripts/install-test-deps.sh; do
    echo "-- $s"
    bash "$s"
  done
}
# fuzz_wanted: the fuzz phases run (a budget, and nightly for libFuzzer's
# instrumentation; scripts/fuzz-smoke.sh needs no cargo-fuzz).
fuzz_wanted() {
  [ "${FUZZ_BUDGET:-120}" != 0 ] && rustup toolchain list | grep -q '^nightly'
}
# fuzz PHASE: scripts/fuzz-smoke.sh build|run, or a visible skip.
fuzz() {
  if fuzz_wanted; then
    nice -n 10 scripts/fuzz-smoke.sh "$1"
  elif [ "${FUZZ_BUDGET:-120}" = 0 ]; then
    echo "SKIP: fuzz smoke runs (FUZZ_BUDGET=0)"
  else
    echo "SKIP: no nightly toolchain for the fuzz targets (the decoders' proptests still ran)"
    [ "${CI:-}" != true ] || { echo "FAIL: CI=true and the fuzz smoke runs cannot run"; return 1; }
  fi
}
export -f install_build_deps install_deps fuzz_wanted fuzz

# The 500-node telemetry run is a scale run: it runs in an optimised build
# of the simulator (debug builds list it as ignored; the debug test binary
# of the workspace build was not cheaper in CPU, docs/CI.md Session 8).
SIM_RELEASE=(cargo test --release -p moss-sim --test telemetry)

# Every crate's suites outside cargo (browser, real NATs, Python host,
# README demos, netns, soak): <crate>/scripts/extra-tests.sh, each a phase
# of its own after the workspace build. The browser suite's wasm builds
# (their own toolchain and target dir) start early, in wasm-build.
extra_phase() {
  local s=$1 crate=${1%%/*} after=build,install
  [ "$crate" = engine ] && after=build,webrtc-build,install
  [ "$crate" = wasm ] && after=build,wasm-build,webrtc-build,install
  phase "extra-$crate" "$after" bash "$s"
}

all_phases() {
  local lanes
  phase install-build - install_build_deps
  # install (test tools, browsers, the wasm toolchain) runs in a lane of its
  # own, beside the builds: only nextest, wasm-build and the extra suites
  # wait for it.
  phase install install-build install_deps &
  lanes=($!)
  # Lanes: each line runs its phases in order; the lanes run side by side.
  # The workspace lane (nextest, doctest and doc wait for its build) and
  # the wasm lane (install -> wasm-build -> extra-wasm: the whole of a
  # 1254 s fresh run on 2 Dec 2026, while wasm-build was niced and
  # starved) run at normal priority;
  # the fuzz and release-sim builds, the 500-node run and the fuzz runs
  # at a lower one (nice), filling the time the others leave idle.
  # webrtc-build (scripts/webrtc-build.sh: the webrtc feature's test and
  # binaries, one cargo call in target/debug) runs before the workspace
  # build, so nothing builds in target/debug while tests run, and the
  # workspace build's binaries are the ones left in target/debug.
  {
    phase fmt install-build cargo fmt --all -- --check
    phase webrtc-build install-build bash scripts/webrtc-build.sh
    phase build install-build cargo build --workspace --all-targets
    phase nextest build,install cargo nextest run --workspace --no-fail-fast
    phase doctest build cargo test --workspace --doc
    phase doc build env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
  } &
  lanes+=($!)
  {
    phase fuzz-build install-build fuzz build
    phase fuzz-run fuzz-build fuzz run
  } &
  lanes+=($!)
  {
    phase sim-release-build install-build nice -n 10 "${SIM_RELEASE[@]}" --no-run
    phase sim-release sim-release-build nice -n 10 "${SIM_RELEASE[@]}"
  } &
  lanes+=($!)
  phase wasm-build install bash wasm/scripts/extra-tests.sh --build &
  lanes+=($!)
  local s
  for s in */scripts/extra-tests.sh; do
    extra_phase "$s" &
    lanes+=($!)
  done
  wait "${lanes[@]}"
}

# ---- the runner --------------------------------------------------------
LOGS=$ROOT/target/ci-logs
T0=$(date +%s)
SELECTED=" $* "
WAIT_LIMIT=${CI_PHASE_WAIT_LIMIT:-6000} # seconds a phase waits for the ones before it

clock() { local s=$(($(date +%s) - T0)); printf '%02d:%02d' $((s / 60)) $((s % 60)); }
load1() { cut -d' ' -f1 /proc/loadavg; }
selected() { [ "$SELECTED" = "  " ] || [[ $SELECTED == *" $1 "* ]]; }

# cpu_mark FILE: this shell's children's CPU seconds so far (user + system,
# every waited-for descendant) into FILE. Called directly, never in $(...):
# `times` in a subshell sees none of this shell's children.
cpu_mark() {
  times >"$1"
}
# cpu_between FILE0 FILE1: CPU seconds between two cpu_mark files.
cpu_between() {
  awk 'function s(t) { split(t, a, /[ms]/); return a[1] * 60 + a[2] }
    FNR == 2 { c = s($1) + s($2); if (NR == FNR) then0 = c; else print int(c - then0 + 0.5) }' "$1" "$2"
  rm -f "$1" "$2"
}

# say TEXT...: one line on stdout, never interleaved with a phase's log.
say() { { flock 9; echo "$*"; } 9>>"$LOGS/.print"; }

# status_of NAME: prints the phase's result (ok, FAIL, skipped; waits
# while it runs), or "ok" for a phase that was not selected.
status_of() {
  local name=$1 waited=0
  selected "$name" || { echo ok; return; }
  while [ ! -e "$LOGS/$name.status" ]; do
    [ $waited -lt "$WAIT_LIMIT" ] || { echo FAIL; return; }
    sleep 1
    waited=$((waited + 1))
  done
  cut -d' ' -f1 "$LOGS/$name.status"
}

# phase NAME AFTER CMD...: runs CMD (in a fresh bash with errexit and
# pipefail, stdin closed) once every phase in AFTER (comma-separated, or -)
# passed; skipped when one did not. Output to target/ci-logs/NAME.log,
# printed when it ends; result, start, end, load to NAME.status.
phase() {
  local name=$1 after=$2 dep result=ok start end rc cpu=0
  shift 2
  selected "$name" || return 0
  if [ "$after" != - ]; then
    for dep in ${after//,/ }; do
      [ "$(status_of "$dep")" = ok ] || result="skipped (after $dep)"
    done
  fi
  start=$(date +%s)
  if [ "$result" = ok ]; then
    say "-- [$(clock)] start $name: $*"
    cpu_mark "$LOGS/$name.cpu0"
    # its own session, so an interrupted run can stop all it started.
    # A new session is a new scheduler autogroup (sched_autogroup_enabled
    # on Debian kernels), and the kernel shares CPU equally between
    # autogroups whatever `nice` says inside them: a background lane (its
    # command starts with nice, or the fuzz phases) sets its own
    # autogroup's nice to 10, so the workspace lane, the long pole, keeps
    # its priority over the builds beside it.
    local ag=0
    [[ $1 == nice || $1 == fuzz ]] && ag=10
    MOSS_AUTOGROUP_NICE=$ag setsid bash -euo pipefail -c \
      '[ "$MOSS_AUTOGROUP_NICE" = 0 ] || echo "$MOSS_AUTOGROUP_NICE" 2>/dev/null >/proc/self/autogroup || true; "$@"' \
      "$name" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$LOGS/$name.pid"
    wait $!
    rc=$?
    rm -f "$LOGS/$name.pid"
    [ $rc = 0 ] || result="FAIL(rc=$rc)"
    cpu_mark "$LOGS/$name.cpu1"
    cpu=$(cpu_between "$LOGS/$name.cpu0" "$LOGS/$name.cpu1")
  else
    echo "$result" >"$LOGS/$name.log"
  fi
  end=$(date +%s)
  echo "${result// /_} $((start - T0)) $((end - T0)) $(load1) $cpu" >"$LOGS/$name.tmp"
  mv "$LOGS/$name.tmp" "$LOGS/$name.status"
  {
    flock 9
    echo "== [$(clock)] $name: $result in $((end - start))s (${cpu}s CPU)"
    if [ "${result#skipped}" = "$result" ]; then
      sed "s/^/[$name] /" "$LOGS/$name.log"
      echo "== end of $name ($result)"
    fi
  } 9>>"$LOGS/.print"
}

# heartbeat: every 2 minutes, which phases are still running.
heartbeat() {
  local n=0 running f
  while [ $n -lt 200 ]; do
    sleep 120 >/dev/null 2>&1 # (not holding the log open after the run)
    n=$((n + 1))
    running=""
    for f in "$LOGS"/*.log; do
      [ -e "$f" ] || continue
      f=${f##*/}
      [ -e "$LOGS/${f%.log}.status" ] || running+=" ${f%.log}"
    done
    say "-- [$(clock)] running:${running:- (none)}; load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
}

summary() {
  local f name result start end load cpu total_cpu=0 passed=0 failed=0
  echo
  echo "== phase timings (wall seconds; start and end from the run's start; cpu: CPU seconds, user + system, of the phase's processes; load: 1-min load average at the end)"
  printf '%-20s %-22s %7s %7s %7s %7s %6s\n' phase result start end seconds cpu load
  for f in $(ls "$LOGS"/*.status 2>/dev/null); do
    name=${f##*/}
    name=${name%.status}
    read -r result start end load cpu <"$f"
    printf '%s %-20s %-22s %7s %7s %7s %7s %6s\n' "$start" "$name" "$result" "$start" "$end" $((end - start)) "${cpu:-?}" "$load"
  done | sort -n | cut -d' ' -f2-
  for f in "$LOGS"/*.status; do
    [ -e "$f" ] || continue
    read -r result _ _ _ cpu <"$f"
    total_cpu=$((total_cpu + ${cpu:-0}))
    if [ "$result" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
  echo "total: $(($(date +%s) - T0))s wall, ${total_cpu}s CPU in the phases, on $(nproc) cores; load average at the start $LOAD0, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "phases: $passed passed, $failed failed"
  [ $failed = 0 ]
}

if [ "${1:-}" = --list ]; then
  phase() { echo "$1"; }
  SELECTED="  "
  LOGS=$(mktemp -d)
  all_phases | sort -u
  rm -rf "$LOGS"
  exit 0
fi

rm -rf "$LOGS"
mkdir -p "$LOGS"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "== scripts/test-all.sh on $(nproc) cores, load average $LOAD0; phase logs in target/ci-logs/"
heartbeat &
HEARTBEAT=$!
# stop: on INT/TERM, every running phase's session, then the lanes.
stop() {
  local f
  kill $HEARTBEAT 2>/dev/null
  for f in "$LOGS"/*.pid; do
    [ -e "$f" ] && kill -TERM -- "-$(cat "$f")" 2>/dev/null
  done
  kill $(jobs -p) 2>/dev/null
  exit 130
}
trap stop INT TERM
# The extra suites use the workspace build's binaries instead of building
# their packages alone (which resolves other features and rebuilds), and
# the browser suite the WebRTC binaries of phase webrtc-build.
selected build && export MOSS_PREBUILT=1
selected webrtc-build && export MOSS_WEBRTC_PREBUILT=1
all_phases
kill $HEARTBEAT 2>/dev/null
wait $HEARTBEAT 2>/dev/null
summary
