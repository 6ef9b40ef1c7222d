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
# Cargo names a binary by its uplifted path (target/debug/<bin>), which
# holds the last variant linked: after this call's link (not fresh) that is
# ours; when fresh, the workspace build may have linked its own there since,
# and the copy of the last link, or else the newest webrtc-feature build in
# target/debug/deps (its fingerprint names the features), is ours.
python3 - "$log" "$out" <<'PY'
import glob, json, os, shutil, sys
log, out = sys.argv[1], sys.argv[2]
found = {}
for line in open(log):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bin" in t.get("kind", []):
        found[t["name"]] = (m["executable"], m.get("fresh", False))
for name, pkg in (("moss-gateway", "moss-gateway"), ("moss", "moss-cli")):
    if name not in found:
        sys.exit(f"FAIL: cargo built no {name} binary")
    exe, fresh = found[name]
    dst = os.path.join(out, name)
    if fresh:
        if os.path.exists(dst):
            continue
        fps = []
        for fp in glob.glob(f"target/debug/.fingerprint/{pkg}-*/bin-{name}.json"):
            h = os.path.basename(os.path.dirname(fp))[len(pkg) + 1:]
            bin_ = f"target/debug/deps/{name.replace('-', '_')}-{h}"
            with open(fp) as f:
                if "webrtc" in json.load(f).get("features", "") and os.path.exists(bin_):
                    fps.append((os.path.getmtime(bin_), bin_))
        if not fps:
            sys.exit(f"FAIL: no webrtc build of {name} in target/debug/deps")
        exe = max(fps)[1]
    shutil.copy2(exe, dst + ".tmp")
    os.replace(dst + ".tmp", dst)
PY
ls -l "$out"
