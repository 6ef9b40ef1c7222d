#!/usr/bin/env bash
# Runs the top-level README's demo blocks as written and checks that the
# message visibly arrives. A block is the ```sh fence after a
# `<!-- demo: NAME -->` comment; `moss` and `moss-gateway` come from the
# workspace build (target/debug, built here if missing) on PATH, as
# `cargo install` would put them. Each demo runs in a fresh network
# namespace when one can be made (root), so its fixed ports cannot clash
# with anything else on the machine; otherwise on the host's loopback.
# Every step is bounded by `timeout`, and every process it starts is killed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
README=$ROOT/README.md

bin_dir=${MOSS_BIN_DIR:-$ROOT/target/debug}
if [ ! -x "$bin_dir/moss" ] || [ ! -x "$bin_dir/moss-gateway" ]; then
  echo "-- building moss and moss-gateway"
  cargo build -q -p moss-cli -p moss-gateway
  bin_dir=$ROOT/target/debug
fi
export PATH="$bin_dir:$PATH"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  done
  sleep 0.2
  for p in "${pids[@]}"; do
    kill -KILL -- "-$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# extract NAME: prints the body of the sh fence after <!-- demo: NAME -->.
extract() {
  awk -v name="$1" '
    $0 ~ "^<!-- demo: " name " -->$" { armed = 1; next }
    armed && /^```sh$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }
  ' "$README"
}

for name in chat-sub chat-pub gateways; do
  extract "$name" >"$work/$name.sh"
  if [ ! -s "$work/$name.sh" ]; then
    echo "FAIL: README has no demo block '$name'"
    exit 1
  fi
done

use_ns=0
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && unshare --net --pid --fork --kill-child true 2>/dev/null; then
  use_ns=1
  echo "-- each demo runs in its own network and PID namespace"
else
  echo "-- no namespaces (needs root, unshare and ip): demos use the host's loopback"
fi
# ns.sh SCRIPT: runs SCRIPT in a fresh network + PID namespace with
# loopback up (everything it starts dies with it), or plainly.
cat >"$work/ns.sh" <<EOF
if [ $use_ns = 1 ]; then
  exec unshare --net --pid --fork --kill-child bash -c 'ip link set lo up && exec bash "\$0"' "\$1"
fi
exec bash "\$1"
EOF

fail() {
  echo "FAIL: $1"
  shift
  for f in "$@"; do
    echo "---- $f"
    cat "$f" || true
  done
  exit 1
}

echo "== README demo: a chat between two terminals"
# Both terminals share one namespace: a driver script runs them.
cat >"$work/chat.sh" <<EOF
setsid bash "$work/chat-sub.sh" >"$work/sub.out" 2>"$work/sub.err" &
sub=\$!
timeout 30 bash "$work/chat-pub.sh" >"$work/pub.out" 2>"$work/pub.err"
echo \$? >"$work/pub.rc"
for _ in \$(seq 1 50); do
  grep -qx hello "$work/sub.out" && break
  sleep 0.1
done
kill -TERM -- -\$sub 2>/dev/null || kill -TERM \$sub
wait \$sub 2>/dev/null
exit 0
EOF
setsid timeout 60 bash "$work/ns.sh" "$work/chat.sh" &
pids+=($!)
wait "${pids[-1]}" || true
rc=$(cat "$work/pub.rc" 2>/dev/null || echo missing)
[ "$rc" = 0 ] || fail "moss pub exited with $rc" "$work/pub.err" "$work/sub.err"
grep -qx hello "$work/sub.out" || fail "terminal 1 did not print hello" "$work/sub.out" "$work/sub.err" "$work/pub.err"
grep -q "peer joined" "$work/sub.err" || fail "terminal 1 did not log the peer joining" "$work/sub.err"
echo "ok: terminal 1 printed: $(cat "$work/sub.out")"

echo "== README demo: two gateways on one host"
setsid timeout 90 bash "$work/ns.sh" "$work/gateways.sh" >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
wait "${pids[-1]}" || fail "the gateway demo block failed" "$work/gw.out" "$work/gw.err"
grep -q '"text":"hello, gateways"' "$work/gw.out" \
  || fail "the gateway did not show the message" "$work/gw.out" "$work/gw.err"
grep -q '"peer_count":1' "$work/gw.out" \
  || fail "the second gateway did not report its peer" "$work/gw.out" "$work/gw.err"
grep -q "peer joined" "$work/gw.err" || fail "the gateways did not log peers joining" "$work/gw.err"
echo "ok: /api/messages showed the message"
echo "README demos: 2 passed"
