#!/usr/bin/env bash
# Per-pair hole-punch timings between real Moss nodes behind the natlab
# NATs (its own lab, prefix mpt-). Each try starts fresh nodes
# (engine/examples/nat_peer): one in every h-<kind> host and its twin, one
# on pub2 that is every node's only static peer, all on one chat topic (one
# node per host: GossipSub's IP colocation score would prune several nodes
# behind one NAT address). Every node learns of the others from messages
# the public node forwards and asks it for introductions, so all 66 pairs
# punch at once. Per pair and try: direct when both ends list each other as
# direct peers within TRY_S seconds; its time is the slower end's, from the
# forwarder's PUNCH_OFFER to the session; first attempt when neither end
# needed a second offer. A spray pair (symmetric with a port-restricted
# cone or CGNAT) is direct on a spray socket (path `channel:N`); a path
# through a supernode (`relay:`) never counts as direct. Prints per pair of kinds (both orientations and
# twins pooled, so up to 4 host pairs a try): host-pair tries, success
# share, first-attempt share, p50/p99 ms; writes the table as Markdown to
# $OUT (default target/punch-timings.md).
#   TRIES=20 TRY_S=60 nat/scripts/punch-timings.sh
# Without namespaces: SKIP (exit 0), or FAIL under CI=true.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=nat/scripts/natlab
export NATLAB_PREFIX=mpt-
STATE=/run/moss-natlab-mpt
TRIES=${TRIES:-20}
TRY_S=${TRY_S:-60}
OUT=${OUT:-target/punch-timings.md}
# shellcheck source=lab-preflight.sh
source nat/scripts/lab-preflight.sh
lab_preflight "punch timings" "$NATLAB_PREFIX" turnserver miniupnpd
[ -x target/debug/examples/nat_peer ] || nice -n 10 cargo build -q -p moss --example nat_peer
PEER=$PWD/target/debug/examples/nat_peer
DIR=$(mktemp -d -t moss-punch-timings.XXXXXX); echo "punch timings: node status files in $DIR"
cleanup() { "$LAB" down >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] || rm -rf "$DIR"; }
trap cleanup EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up
# CGNAT is spotted through NAT-PMP on the home routers (as in gateway-lab.sh).
"$LAB" portmap nat-cgnat 192.168.5.0/24
"$LAB" portmap nat-cgnat2 192.168.15.0/24
KINDS=(full_cone restricted_cone port_restricted_cone symmetric cgnat public)
sites=()
for k in "${KINDS[@]}"; do sites+=("$k" "${k}2"); done
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for ((t = 0; t < TRIES; t++)); do
  port=$((5000 + (t % 50) * 10))
  mkdir -p "$DIR/$t"
  "$LAB" bg pub2 "pt-pub" "$PEER" --port $((port + 9)) --map none --seconds $((TRY_S + 10)) --status "$DIR/$t/pub.json"
  sleep 0.3
  for site in "${sites[@]}"; do
    "$LAB" bg "h-$site" "pt-$site" "$PEER" --port "$port" --static 203.0.113.20:$((port + 9)) \
        --seconds $((TRY_S + 5)) --status "$DIR/$t/$site.json"
  done
  start=$(date +%s)
  until python3 - "$DIR/$t" "${sites[@]}" <<'PY'
import itertools, json, os, sys
d, sites = sys.argv[1], sys.argv[2:]
bad = {frozenset(p) for p in [("symmetric",), ("symmetric", "port_restricted_cone"), ("symmetric", "cgnat")]}
def kind(s): return s[:-1] if s.endswith("2") else s
st = {}
for s in sites:
    try:
        st[s] = json.load(open(os.path.join(d, s + ".json")))
    except Exception:
        sys.exit(1)
def direct(x, y):
    p = x.get("paths", {}).get(y["id"])
    return p is not None and not p.startswith("relay:")
for a, b in itertools.combinations(sites, 2):
    if frozenset((kind(a), kind(b))) == frozenset(("symmetric",)):
        continue
    if not direct(st[a], st[b]) or not direct(st[b], st[a]):
        sys.exit(1)
PY
  do
    [ $(( $(date +%s) - start )) -ge "$TRY_S" ] && break
    sleep 1
  done
  # The state at this moment is the try's result: nodes that stop close
  # their sessions, and the others would write that down.
  mkdir -p "$DIR/$t/final"
  cp "$DIR/$t"/*.json "$DIR/$t/final/" 2>/dev/null || true
  for f in "$STATE"/pt-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1
  echo "try $((t + 1))/$TRIES done after $(( $(date +%s) - start )) s"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$DIR" "$TRIES" "$OUT" "$load_start" "$load_end" "${sites[@]}" <<'PY'
import itertools, json, os, sys
d, tries, out, l0, l1, sites = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
order = ["full_cone", "restricted_cone", "port_restricted_cone", "symmetric", "cgnat", "public"]
bad = {frozenset(p) for p in [("symmetric",), ("symmetric", "port_restricted_cone"), ("symmetric", "cgnat")]}
spray = {frozenset(p) for p in [("symmetric", "port_restricted_cone"), ("symmetric", "cgnat")]}
def kind(s): return s[:-1] if s.endswith("2") else s
def pct(v, p):
    if not v:
        return "-"
    v = sorted(v)
    return "%.0f" % v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
agg = {}
classified = {}
for t in range(tries):
    st = {}
    for s in sites:
        try:
            st[s] = json.load(open(os.path.join(d, str(t), "final", s + ".json")))
        except Exception:
            st[s] = None
        if st[s]:
            c = classified.setdefault(s, {})
            c[st[s]["nat_type"]] = c.get(st[s]["nat_type"], 0) + 1
    for a, b in itertools.combinations(sites, 2):
        ka, kb = sorted((kind(a), kind(b)), key=order.index)
        r = agg.setdefault((ka, kb), {"n": 0, "ok": 0, "first": 0, "ms": []})
        r["n"] += 1
        A, B = st[a], st[b]
        def direct(x, y):
            p = x.get("paths", {}).get(y["id"])
            return p is not None and not p.startswith("relay:")
        if not A or not B or not direct(A, B) or not direct(B, A):
            continue
        r["ok"] += 1
        ends = [x["punched"].get(y["id"]) for x, y in ((A, B), (B, A))]
        ends = [e for e in ends if e]
        if all(e["offers"] <= 1 for e in ends):
            r["first"] += 1
        if ends:
            r["ms"].append(max(e["ms"] for e in ends))
lines = [
    "| A | B | plain-UDP punchable | direct | first attempt | p50 ms | p99 ms |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]
for (ka, kb), r in sorted(agg.items(), key=lambda x: (order.index(x[0][0]), order.index(x[0][1]))):
    plain = "no" if frozenset((ka, kb)) in bad else "yes"
    if frozenset((ka, kb)) in spray:
        plain = "no (spray)"
    lines.append("| %s | %s | %s | %d/%d | %d/%d | %s | %s |" % (
        ka, kb, plain, r["ok"], r["n"], r["first"], r["n"], pct(r["ms"], 50), pct(r["ms"], 99)))
pun = [r for k, r in agg.items() if frozenset(k) not in bad]
un = [r for k, r in agg.items() if frozenset(k) in bad]
n, ok, first = sum(r["n"] for r in pun), sum(r["ok"] for r in pun), sum(r["first"] for r in pun)
allms = [m for r in pun for m in r["ms"]]
sp = [r for k, r in agg.items() if frozenset(k) in spray]
spms = [m for r in sp for m in r["ms"]]
summary = ("%d tries. Plain-UDP-punchable host pairs: %d/%d direct (%.1f %%), %d/%d on the first offer (%.1f %%), "
           "p50 %s ms, p99 %s ms over all; spray pairs (symmetric with port-restricted or CGNAT) direct: %d/%d "
           "(%d/%d on the first offer, p50 %s ms, p99 %s ms); symmetric pairs direct: %d/%d. "
           "Load average %s at start, %s at end.\n\n"
           "Classes reported (host: class x tries): %s" % (
    tries, ok, n, 100 * ok / max(n, 1), first, n, 100 * first / max(n, 1), pct(allms, 50), pct(allms, 99),
    sum(r["ok"] for r in sp), sum(r["n"] for r in sp), sum(r["first"] for r in sp), sum(r["n"] for r in sp),
    pct(spms, 50), pct(spms, 99),
    sum(r["ok"] for r in un if r not in sp), sum(r["n"] for r in un if r not in sp), l0, l1,
    "; ".join("%s: %s" % (s, ", ".join("%s x%d" % kv for kv in sorted(classified.get(s, {}).items()))) for s in sites)))
text = "\n".join(lines) + "\n\n" + summary + "\n"
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
open(out, "w").write(text)
print(text)
PY
