#!/usr/bin/env bash
# Relays through supernodes between real Moss processes behind real Linux
# NATs (nat/scripts/natlab, its own lab with prefix mrl-; tears it down on
# exit). Without root or network namespaces: SKIP (exit 0), or FAIL under
# CI=true.
#
#   - two supernodes on the lab's public hosts: engine/examples/relay_host
#     on pub2 (2 engine shards) and on pub1 (1 shard), promoted after 3 s of
#     uptime (supernode_min_uptime_sec lowered for the test), both carrying
#     the `chat` topic;
#   - ends (engine/examples/relay_peer) behind a symmetric NAT, its
#     twin symmetric NAT, a CGNAT, a port-restricted cone NAT and a
#     symmetric NAT with a routable-looking WAN (natlab kind
#     mapped_symmetric; its end asks for a port mapping, which fails until
#     miniupnpd starts there): symmetric<->symmetric cannot be punched,
#     symmetric<->CGNAT and symmetric<->port-restricted only by birthday
#     spraying, CGNAT<->port-restricted by a plain punch; each end's static
#     peers are the two supernodes only.
#   1. every pair must end connected both ways and hear the other on
#      `e2e`, a topic only the ends subscribe (so its messages took the
#      ends' own session, relayed through the relay's data plane or
#      direct), both ways: symmetric<->symmetric relayed on both sides
#      (`relay:<supernode>/<session>` paths), pairs a plain punch opens
#      direct, the spray pairs either (the table says which);
#   2. the supernode carrying most pairs is killed (SIGKILL to its process
#      group ends it at once: no CLOSE, no revocation, its peers notice the
#      silence); every pair must be relayed again by the other supernode,
#      or direct, and hear the other on `e2e` after the kill;
#   3. the killed supernode is restarted (same host and port, a new process
#      and so a new identity): it must be promoted again;
#   4. the other supernode gets SIGTERM: it must stop cleanly within 10 s,
#      printing its final relay counters and `stopped`; every pair must move
#      back to the restarted supernode (or direct) and hear the other on
#      `e2e` after the stop;
#   5. the restarted supernode must still be one after its 60 s re-check
#      (no event 4);
#   6. the fifth end starts, gets relayed pairs, then miniupnpd (NAT-PMP,
#      PCP) starts on its mapped_symmetric router mid-run: its mapping must
#      be taken at once (miniupnpd multicasts a PCP ANNOUNCE to
#      224.0.0.1:5350 as it starts, and the engine listens for it; the
#      time is printed), and each of its relayed pairs must migrate to
#      direct, with event 7 at both ends (MAPPED, docs/PROTOCOL.md), and
#      hear the other on `e2e` after it.
#      Then, 70 s later (RELAY_LAB_MAP_WAIT, 0 skips it), the supernode
#      must still be one after its 60 s re-check. Once the mapping exists,
#      a supernode that dials the mapped address while that end's earlier
#      flow to the supernode is still tracked gets its source port rewritten
#      by the NAT (a conntrack tuple clash) and the end reports that port;
#      the classifier used to compare that report with the supernode's
#      untranslated ones, call itself symmetric_nat and revoke.
#   Prints per pair the supernode used, the times, and the supernodes'
#   relayed datagrams, events (3 promoted, 4 revoked) and bucket drops.
#   RELAY_LAB_S: how long each phase may take (default 90 s);
#   RELAY_LAB_KILL=sn1|sn2: kill and restart that one instead;
#   RELAY_LAB_KEEP=DIR: keep the logs and status files there.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=$PWD/nat/scripts/natlab
export NATLAB_PREFIX=mrl-
STATE=${NATLAB_STATE:-/run/moss-natlab-mrl}

# shellcheck source=lab-preflight.sh
source nat/scripts/lab-preflight.sh
lab_preflight "relay real-NAT suite" mrl- turnserver miniupnpd

# MOSS_PREBUILT=1: scripts/test-all.sh's workspace build (--all-targets)
# made both examples; `-p moss` alone resolves other features and rebuilt
# 23 crates in the CI's extra-nat phase.
[ "${MOSS_PREBUILT:-}" = 1 ] || nice -n 10 cargo build -q -p moss --example relay_host --example relay_peer
HOST=$PWD/target/debug/examples/relay_host
PEER=$PWD/target/debug/examples/relay_peer
DIR=$(mktemp -d -t moss-relay-lab.XXXXXX)
PHASE_S=${RELAY_LAB_S:-90}
RUN_S=$((6 * PHASE_S + 120 + ${RELAY_LAB_MAP_WAIT:-70}))
# RELAY_LAB_KEEP=DIR: the processes' logs and status files are copied there at exit.
cleanup() {
  if [ -n "${RELAY_LAB_KEEP:-}" ]; then
    mkdir -p "$RELAY_LAB_KEEP" && cp "$STATE"/*.log "$DIR"/* "$RELAY_LAB_KEEP"/ 2>/dev/null || true
  fi
  "$LAB" down >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --kinds symmetric,cgnat,port_restricted_cone,mapped_symmetric

S1=203.0.113.20:4200 S2=203.0.113.10:4300
# start_sn NAME: sn1 on pub2 (2 shards), sn2 on pub1 (1 shard).
start_sn() {
  case $1 in
    sn1) "$LAB" bg pub2 sn1 "$HOST" natlab 0.0.0.0:4200 2 3 --subscribe chat --seconds "$RUN_S" --status "$DIR/sn1.json";;
    sn2) "$LAB" bg pub1 sn2 "$HOST" natlab 0.0.0.0:4300 1 3 --subscribe chat --seconds "$RUN_S" --status "$DIR/sn2.json";;
  esac
}
start_sn sn1
start_sn sn2
sleep 0.5
ENDS="symmetric symmetric2 cgnat port_restricted_cone"
# start_end SITE [OPTION...]
start_end() {
  local site=$1; shift
  "$LAB" bg "h-$site" "end-$site" "$PEER" --port 4000 --static "$S1" --static "$S2" \
      --seconds "$RUN_S" --status "$DIR/$site.json" "$@"
}
for site in $ENDS; do start_end "$site"; done

# The status files' reader, shared by the checks below.
cat >"$DIR/labstatus.py" <<'PY'
import json, os
def load(d, name):
    """A process's status file as a dict ({} while it is missing or half written)."""
    try:
        return json.load(open(os.path.join(d, name + ".json")))
    except Exception:
        return {}
PY

# check PHASE [SINCE [GONE]]: prints the table; exit 0 when every pair is
# connected both ways as expected (symmetric<->symmetric relayed through a
# live supernode, plain-punch pairs direct, spray pairs either; any pair
# of an end holding a port mapping either) and each end heard the other on
# e2e after SINCE. GONE: the killed supernode's id.
check() {
  python3 - "$DIR" "$1" "${2:-0}" "${3:-}" $ENDS <<'PY'
import itertools, sys
d, phase, since, gone, ends = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5:]
sys.path.insert(0, d)
from labstatus import load
st = {e: load(d, e) for e in ends}
sn = {n: load(d, n) for n in ("sn1", "sn2")}
names = {v.get("id"): n for n, v in sn.items() if v.get("id")}
def path(a, b):
    for p in st[a].get("peers", []):
        if p["id"] == st[b].get("id"):
            return p["addr"]
    return None
def via(p):
    if p and p.startswith("relay:"):
        return names.get(p[6:].split("/")[0], "?")
    return "direct" if p else None
def symmetric(e):
    return e.startswith(("symmetric", "mapped_symmetric"))
def expect(a, b):
    """relayed (no punch can open it), direct (a plain punch does) or either (the birthday spray may)."""
    if st[a].get("mapped") or st[b].get("mapped"):
        return "either"
    return {2: "relayed", 1: "either", 0: "direct"}[symmetric(a) + symmetric(b)]
ok_all, rows, used = True, [], {}
for a, b in itertools.combinations(ends, 2):
    pa, pb = path(a, b), path(b, a)
    va, vb = via(pa), via(pb)
    ha = st[a].get("heard", {}).get("e2e", {}).get(st[b].get("id"), 0)
    hb = st[b].get("heard", {}).get("e2e", {}).get(st[a].get("id"), 0)
    relayed = va == vb and va not in (None, "?", "direct") and va != names.get(gone, "-")
    direct = va == "direct" and vb == "direct"
    want = expect(a, b)
    shape = relayed if want == "relayed" else direct if want == "direct" else relayed or direct
    ok = shape and ha > since and hb > since
    ok_all &= ok
    if relayed:
        used[va] = used.get(va, 0) + 1
    rows.append((a, b, want, va, vb, ha > since, hb > since, ok))
if phase == "final" or phase == "kill":
    print("%-20s %-20s %-8s %-10s %-10s %-12s %-12s" % ("A", "B", "expected", "A's path", "B's path", "A heard B", "B heard A"))
    for a, b, want, va, vb, ha, hb, ok in rows:
        print("%-20s %-20s %-8s %-10s %-10s %-12s %-12s %s" % (a, b, want, va, vb, ha, hb, "" if ok else "<-- not as expected, or not heard both ways on e2e"))
    for n, v in sorted(sn.items()):
        print("%s: %s supernode=%s events=%s relayed %s datagrams, %s bytes, %s over the buckets" % (
            n, v.get("nat_type"), v.get("supernode"), v.get("events"), v.get("relayed_datagrams"), v.get("relayed_bytes"), v.get("relay_rate_limited")))
    for e in ends:
        ev = [x["id"] for x in st[e].get("events", [])]
        print("%s (%s): host events %s, forged relay frames %s" % (e, st[e].get("nat_type"), ev, st[e].get("relay_forged")))
if phase == "kill":
    # The supernode carrying most pairs, as a name.
    print("KILL", max(sorted(used), key=lambda n: used[n]) if used else "")
sys.exit(0 if ok_all else 1)
PY
}

wait_for() {  # SINCE GONE: polls check until it passes or PHASE_S runs out
  local start; start=$(date +%s)
  until check poll "$1" "$2" >/dev/null 2>&1; do
    [ $(( $(date +%s) - start )) -ge "$PHASE_S" ] && return 1
    sleep 2
  done
  echo "after $(( $(date +%s) - start )) s"
}

fail=0
echo "== real Moss nodes behind symmetric NATs, a CGNAT and a port-restricted cone NAT (supernodes on pub2 and pub1): unpunchable pairs relayed, punchable ones direct"
if wait_for 0 ""; then :; else echo "not all pairs after ${PHASE_S} s"; fail=1; fi
out=$(check kill 0 "") || fail=1
echo "$out" | grep -v '^KILL'
victim=${RELAY_LAB_KILL:-$(echo "$out" | sed -n 's/^KILL //p')}
if [ -z "$victim" ]; then
  echo "FAIL: no pair was relayed, nothing to kill"
  exit 1
fi
gone=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$DIR/$victim.json")
echo
echo "== killing $victim (carries most pairs): pairs move to the other supernode (or direct)"
t_kill=$(date +%s.%N)
# The pid is natlab's `timeout`, the leader of the host's process group.
kill -KILL -- -"$(cat "$STATE/$victim.pid")"
if wait_for "$t_kill" "$gone"; then :; else echo "not all pairs recovered after ${PHASE_S} s"; fail=1; fi
check final "$t_kill" "$gone" || fail=1
python3 - "$DIR" "$t_kill" $ENDS <<'PY'
import sys
d, t, ends = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
sys.path.insert(0, d)
from labstatus import load
for e in ends:
    ev = load(d, e).get("events", [])
    left = [x for x in ev if x["id"] == 2 and x["t"] >= t]
    back = [x for x in ev if x["id"] == 1 and x["t"] >= t]
    print("%s after the kill: %d peer-left, %d peer-joined events, first rejoin %.1f s after it" % (
        e, len(left), len(back), (min(x["t"] for x in back) - t) if back else float("nan")))
PY
survivor=sn1; [ "$victim" = sn1 ] && survivor=sn2
echo
echo "== restarting $victim (same host and port, a new process and identity): it must be promoted again"
cp "$STATE/$victim.log" "$DIR/$victim.first.log"
rm -f "$DIR/$victim.json"
t_restart=$(date +%s.%N)
start_sn "$victim"
sn_field() {  # NAME FIELD: a field of a supernode's status, or empty
  python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))[sys.argv[2]])
except Exception: print("")' "$DIR/$1.json" "$2"
}
promoted=no
for _ in $(seq $((PHASE_S * 2))); do
  [ "$(sn_field "$victim" supernode)" = True ] && { promoted=yes; break; }
  sleep 0.5
done
if [ $promoted = yes ]; then
  echo "$victim promoted again after $(python3 -c "import time; print('%.1f' % (time.time() - $t_restart))") s"
else
  echo "FAIL: the restarted $victim was not promoted within ${PHASE_S} s"; tail -5 "$STATE/$victim.log"; fail=1
fi
survivor_id=$(sn_field "$survivor" id)
echo
echo "== SIGTERM to $survivor: a clean stop with its final counters; pairs move back to the restarted $victim"
spid=$(cat "$STATE/$survivor.pid")
t_term=$(date +%s.%N)
kill -TERM "$spid"
for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$spid" 2>/dev/null; then
  echo "FAIL: $survivor still running 10 s after SIGTERM"; fail=1
elif grep -q '^final: ' "$STATE/$survivor.log" && grep -qx 'stopped' "$STATE/$survivor.log"; then
  grep '^final: ' "$STATE/$survivor.log"
else
  echo "FAIL: $survivor did not print its final counters and 'stopped':"; tail -5 "$STATE/$survivor.log"; fail=1
fi
echo "stopped $(python3 -c "import time; print('%.1f' % (time.time() - $t_term))") s after the SIGTERM"
if wait_for "$t_term" "$survivor_id"; then :; else echo "not all pairs back after ${PHASE_S} s"; fail=1; fi
check final "$t_term" "$survivor_id" || fail=1
echo
echo "== the restarted $victim past its 60 s re-check: still a supernode, no event 4"
up_s() { python3 -c "import time; print(int(time.time() - $t_restart))"; }
while [ "$(up_s)" -lt 75 ]; do sleep 1; done
events=$(sn_field "$victim" events)
if [ "$(sn_field "$victim" supernode)" = True ] && ! echo "$events" | grep -qw 4; then
  echo "$victim: supernode after $(up_s) s, events $events"
else
  echo "FAIL: the restarted $victim is not a supernode after $(up_s) s (events $events):"
  grep -i 'revoked\|nat' "$STATE/$victim.log" | tail -5; fail=1
fi
echo
echo "== a port mapping opened mid-run: the end behind nat-mapped_symmetric starts, then miniupnpd there; its relayed pairs migrate to direct (event 7)"
ENDS="$ENDS mapped_symmetric"
start_end mapped_symmetric --map
if wait_for "$(date +%s.%N)" "$survivor_id"; then :; else echo "the fourth end's pairs not all connected after ${PHASE_S} s"; fail=1; fi
check final 0 "$survivor_id" >"$DIR/first.txt" || true
grep '^[a-z_0-9]* *[a-z_0-9]* ' "$DIR/first.txt" | grep mapped_symmetric | grep -v '(' || true
t_map=$(date +%s.%N)
"$LAB" portmap nat-mapped_symmetric 192.168.8.0/24
# The mapping, taken when the end hears miniupnpd's PCP ANNOUNCE (not at
# its next retry, 10 s or more after its last failed round).
map_s=""
for _ in $(seq $((PHASE_S * 10))); do
  if python3 -c 'import json,sys
sys.exit(0 if json.load(open(sys.argv[1])).get("mapped") else 1)' "$DIR/mapped_symmetric.json" 2>/dev/null; then
    map_s=$(python3 -c "import time; print('%.1f' % (time.time() - $t_map))"); break
  fi
  sleep 0.1
done
if [ -n "$map_s" ]; then
  echo "mapping taken ${map_s} s after miniupnpd was started"
else
  echo "FAIL: no mapping within ${PHASE_S} s of miniupnpd's start"; fail=1
fi
# migrated SINCE: exit 0 when the mapped end holds a mapping and each of its
# pairs relayed before (in first.txt) is direct at both ends, with event 7
# at both after SINCE and e2e heard both ways after it; prints the times.
migrated() {
  python3 - "$DIR" "$1" mapped_symmetric $ENDS <<'PY'
import os, sys
d, since, m, ends = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
sys.path.insert(0, d)
from labstatus import load
st = {e: load(d, e) for e in ends}
first = open(os.path.join(d, "first.txt")).read().splitlines()
relayed = [e for e in ends if e != m and any(
    l.split()[:2] in ([e, m], [m, e]) and l.split()[3] not in ("direct", "None") for l in first)]
ok = bool(st[m].get("mapped")) and bool(relayed)
print("%s mapped at %s; pairs relayed before the mapping: %s" % (m, st[m].get("mapped"), relayed))
for e in relayed:
    for a, b in ((e, m), (m, e)):
        path = next((p["addr"] for p in st[a].get("peers", []) if p["id"] == st[b].get("id")), None)
        ev = [x for x in st[a].get("events", []) if x["id"] == 7 and x["t"] >= since
              and x["detail"].get("peer_id") == st[b].get("id")]
        heard = st[a].get("heard", {}).get("e2e", {}).get(st[b].get("id"), 0)
        good = path is not None and not path.startswith("relay:") and ev and heard > ev[0]["t"]
        ok &= bool(good)
        print("  %-16s -> %-16s path %-24s event 7 %s  heard after it %s" % (
            a, b, path, "%.1f s after the mapping started (%s -> %s)" % (
                ev[0]["t"] - since, ev[0]["detail"].get("from"), ev[0]["detail"].get("addr")) if ev else "none",
            heard > ev[0]["t"] if ev else False))
sys.exit(0 if ok else 1)
PY
}
start=$(date +%s); moved=no
while [ $(( $(date +%s) - start )) -lt "$PHASE_S" ]; do
  if migrated "$t_map" >/dev/null 2>&1; then moved=yes; break; fi
  sleep 2
done
migrated "$t_map" || true
if [ $moved = yes ]; then
  echo "migrated after $(( $(date +%s) - start )) s"
else
  echo "FAIL: the mapped end's relayed pairs did not all migrate to direct with event 7 within ${PHASE_S} s"; fail=1
fi
map_wait=${RELAY_LAB_MAP_WAIT:-70}
if [ "$map_wait" -gt 0 ]; then
  echo
  echo "== ${map_wait} s after the migration: the supernode must still be one after its re-check"
  sleep "$map_wait"
  events=$(sn_field "$victim" events)
  if [ "$(sn_field "$victim" supernode)" = True ]; then
    echo "$victim: supernode, events $events"
  else
    echo "FAIL: $victim is no longer a supernode (events $events, class $(sn_field "$victim" nat_type))"; fail=1
  fi
fi
if [ $fail = 0 ]; then echo "relay real-NAT suite: all as expected"; else echo "FAIL: relay real-NAT suite"; exit 1; fi
