#!/usr/bin/env bash
# Per-pair hole-punch timings between real Moss nodes behind the natlab
# NATs (its own lab, prefix mpt-). Each try starts, for every pair of NAT
# kinds (the twin host for a same-kind pair), two fresh nodes
# (engine/examples/nat_peer) on ports of their own, each with the one public
# node on pub2 as its only static peer and a topic of the pair's own (the
# public node subscribes to every pair's topic), so each node punches
# exactly one peer: its counters then time that punch, from the forwarder's
# PUNCH_OFFER to the session. A try succeeds when both ends list each other
# as direct peers within TRY_S seconds; it succeeded on the first attempt
# when neither end needed a second offer. Prints one table row per pair
# (tries, success share, first-attempt share, p50/p99 of the slower end's
# offer-to-session time, rounds fired) and writes it as Markdown to
# $OUT (default target/punch-timings.md).
#   TRIES=20 TRY_S=45 nat/scripts/punch-timings.sh
# Without namespaces: SKIP (exit 0), or FAIL under CI=true.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=nat/scripts/natlab
export NATLAB_PREFIX=mpt-
STATE=/run/moss-natlab-mpt
TRIES=${TRIES:-20}
TRY_S=${TRY_S:-45}
OUT=${OUT:-target/punch-timings.md}
skip() {
  echo "SKIP: punch timings: $*"
  [ "${CI:-}" = true ] && { echo "FAIL: CI=true and the punch timings cannot run"; exit 1; }
  exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
for tool in ip nft turnserver miniupnpd; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || skip "$tool missing (nat/scripts/install-test-deps.sh)"
done
[ -x target/debug/examples/nat_peer ] || nice -n 10 cargo build -q -p moss --example nat_peer
PEER=$PWD/target/debug/examples/nat_peer
DIR=$(mktemp -d -t moss-punch-timings.XXXXXX)
cleanup() { "$LAB" down >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up
# CGNAT is spotted through NAT-PMP on the home routers (as in gateway-lab.sh).
"$LAB" portmap nat-cgnat 192.168.5.0/24
"$LAB" portmap nat-cgnat2 192.168.15.0/24
KINDS=(full_cone restricted_cone port_restricted_cone symmetric cgnat public)
pairs=()
for ((i = 0; i < ${#KINDS[@]}; i++)); do
  for ((j = i; j < ${#KINDS[@]}; j++)); do
    a=${KINDS[i]}; b=${KINDS[j]}; [ "$a" = "$b" ] && b="${b}2"
    pairs+=("$a:$b")
  done
done
topics=$(for ((k = 0; k < ${#pairs[@]}; k++)); do printf 'pair%d,' "$k"; done)
topics=${topics%,}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for ((t = 0; t < TRIES; t++)); do
  base=$((5000 + (t % 50) * 100))
  mkdir -p "$DIR/$t"
  "$LAB" bg pub2 "pt-pub" "$PEER" --port $((base + 99)) --topics "$topics" --map none \
      --seconds $((TRY_S + 10)) --status "$DIR/$t/pub.json"
  sleep 0.3
  for ((k = 0; k < ${#pairs[@]}; k++)); do
    IFS=: read -r a b <<<"${pairs[k]}"
    for side in A B; do
      if [ $side = A ]; then site=$a; port=$((base + 2 * k)); else site=$b; port=$((base + 2 * k + 1)); fi
      "$LAB" bg "h-$site" "pt-$k$side" "$PEER" --port "$port" --static 203.0.113.20:$((base + 99)) \
          --topics "pair$k" --seconds $((TRY_S + 5)) --status "$DIR/$t/$k$side.json"
    done
  done
  start=$(date +%s)
  until python3 - "$DIR/$t" "${#pairs[@]}" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
def load(f):
    try:
        return json.load(open(os.path.join(d, f)))
    except Exception:
        return None
for k in range(n):
    a, b = load("%dA.json" % k), load("%dB.json" % k)
    if not a or not b or b["id"] not in a["peers"] or a["id"] not in b["peers"]:
        sys.exit(1)
PY
  do
    [ $(( $(date +%s) - start )) -ge "$TRY_S" ] && break
    sleep 1
  done
  for f in "$STATE"/pt-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1
  echo "try $((t + 1))/$TRIES done after $(( $(date +%s) - start )) s"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$DIR" "$TRIES" "$OUT" "$load_start" "$load_end" "${pairs[@]}" <<'PY'
import json, os, sys
d, tries, out, l0, l1, pairs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
plain_bad = {frozenset(p) for p in [("symmetric",), ("symmetric", "port_restricted_cone"), ("symmetric", "cgnat")]}
def kind(s): return s[:-1] if s.endswith("2") else s
def pct(v, p):
    if not v:
        return "-"
    v = sorted(v)
    return "%.0f" % v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
rows = []
for k, pr in enumerate(pairs):
    a, b = pr.split(":")
    ok = first = 0
    times, rounds = [], []
    classes = set()
    for t in range(tries):
        try:
            A = json.load(open(os.path.join(d, str(t), "%dA.json" % k)))
            B = json.load(open(os.path.join(d, str(t), "%dB.json" % k)))
        except Exception:
            continue
        classes.add((A["nat_type"], B["nat_type"]))
        direct = B["id"] in A["peers"] and A["id"] in B["peers"]
        if not direct:
            continue
        ok += 1
        pa, pb = A["punch"], B["punch"]
        if pa.get("punch_attempts", 0) <= 1 and pb.get("punch_attempts", 0) <= 1:
            first += 1
        ends = [p["punch_ms_total"] / p["punch_succeeded"] for p in (pa, pb) if p.get("punch_succeeded")]
        if ends:
            times.append(max(ends))
        rounds.append(pa.get("punch_rounds", 0) + pb.get("punch_rounds", 0))
    plain = "no" if frozenset((kind(a), kind(b))) in plain_bad else "yes"
    rows.append((a, b, plain, ok, first, times, rounds))
lines = [
    "| A | B | plain-UDP punchable | direct | first attempt | p50 ms | p99 ms | rounds per try (mean, both ends) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
]
for a, b, plain, ok, first, times, rounds in rows:
    lines.append("| %s | %s | %s | %d/%d | %d/%d | %s | %s | %s |" % (
        a, b, plain, ok, tries, first, tries, pct(times, 50), pct(times, 99),
        "%.1f" % (sum(rounds) / len(rounds)) if rounds else "-"))
punchable = [r for r in rows if r[2] == "yes"]
tot_ok = sum(r[3] for r in punchable)
tot_first = sum(r[4] for r in punchable)
n = len(punchable) * tries
summary = ("plain-UDP-punchable pairs: %d/%d tries direct (%.1f %%), %d/%d on the first attempt (%.1f %%); "
           "unpunchable pairs direct: %d/%d; load average %s at start, %s at end" % (
    tot_ok, n, 100 * tot_ok / max(n, 1), tot_first, n, 100 * tot_first / max(n, 1),
    sum(r[3] for r in rows if r[2] == "no"), (len(rows) - len(punchable)) * tries, l0, l1))
text = "\n".join(lines) + "\n\n" + summary + "\n"
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
open(out, "w").write(text)
print(text)
PY
