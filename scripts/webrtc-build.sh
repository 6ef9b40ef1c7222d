#!/usr/bin/env bash
# Builds, in one cargo call, everything the suites need with the `webrtc`
# feature (str0m, OpenSSL; off in the workspace build so the C ABI stays
# OpenSSL-free): moss's `webrtc` test (engine/scripts/extra-tests.sh) and
# the moss-gateway and moss binaries (wasm/scripts/extra-tests.sh). One
# call, one feature resolution, shared by both suites.
# In target/debug beside the workspace build, and resolved for the whole
# workspace as that build is (a `-p moss` selection resolves other features
# for moss-mesh, tokio, regex and more, and compiles them again): only moss
# and what the two binaries and the test are made of differ, under other
# artifact hashes; the rest is the workspace build's own. The two
# binaries are copied to target/webrtc-bins/, which the suites run:
# target/debug/moss-gateway and target/debug/moss are the workspace
# build's, and the next workspace build overwrites them again.
# Usage: scripts/webrtc-build.sh            builds (scripts/test-all.sh:
#                                           phase webrtc-build, before the
#                                           workspace build)
#        scripts/webrtc-build.sh --nextest  runs the webrtc test with the
#                                           same selection (compiles nothing
#                                           after a build)
set -euo pipefail
cd "$(dirname "$0")/.."
# The packages and features of both suites; the test run must select the
# same, or cargo resolves other features and compiles again.
selection=(--workspace --features moss/webrtc,moss-gateway/webrtc,moss-cli/webrtc)
if [ "${1:-}" = --nextest ]; then
  exec cargo nextest run "${selection[@]}" --test webrtc
fi
out=target/webrtc-bins
mkdir -p "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build "${selection[@]}" --bin moss-gateway --bin moss --test webrtc \
  --message-format=json-render-diagnostics >"$log"
for bin in moss-gateway moss; do
  exe=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("name") == sys.argv[2] and "bin" in t.get("kind", []):
        print(m["executable"])
' "$log" "$bin")
  [ -n "$exe" ] && [ -x "$exe" ] || {
    echo "FAIL: cargo built no $bin binary"
    exit 1
  }
  cp "$exe" "$out/$bin.tmp"
  mv "$out/$bin.tmp" "$out/$bin"
done
ls -l "$out"
