#!/usr/bin/env bash
# The engine's suites outside the workspace run: the WebRTC path (feature
# `webrtc`); the TCP carrier where UDP is blocked
# (tcp-netns.sh: namespaces + nftables; skips visibly without root, fails
# under CI=true), and a 2-minute soak of 6 gateways on loopback with
# kill -9 restarts and SIGSTOP flapping (scripts/soak, --check: no message
# lost among gateways that stayed up, every disturbed one recovers, no
# growth of RSS or fds).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Native WebRTC is an opt-in feature (str0m links OpenSSL), so the workspace
# build has it off (the C ABI's static library stays OpenSSL-free): its
# suite runs here, with the feature on. Two native nodes meet through a real
# moss-signal over a str0m DataChannel on loopback. Its build is shared
# with the browser suite's WebRTC binaries (scripts/webrtc-build.sh, one
# cargo call; scripts/test-all.sh runs it before the workspace build), so
# this run compiles nothing then.
echo "== engine: WebRTC DataChannel path (feature webrtc)"
bash scripts/webrtc-build.sh --nextest
bash engine/scripts/tcp-netns.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash scripts/soak/run.sh --nodes 6 --minutes 2 --gap 12 --recovered 20 --out "$work/soak.json" --check
