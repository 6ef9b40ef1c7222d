#!/usr/bin/env bash
# Real moss-gateway nodes behind the natlab NATs (sourced by extra-tests.sh
# with the lab up): one public node on pub2 is every host's only static
# peer; each host's node must classify its own NAT through the mesh alone
# (binding and probe frames, no STUN server). Sets fail=1 on a mismatch.
# GW_PORT / GW_PUB_PORT (4000 / 4100) choose the ports: a section run after
# another must use new ones, or the NATs' filter state from the earlier
# nodes' traffic (the same inner port maps to the same outer one) lets in
# what the new nodes never sent to, and a restricted cone looks full.
GW=$PWD/target/debug/moss-gateway
# NAT-PMP on: the cgnat home routers answer (miniupnpd) that they have no
# public address, which is how a node spots the NAT beyond its gateway.
GW_CONF=$(mktemp -t moss-gw-nat.XXXXXX.json)
echo '{"nat":{"natpmp_enabled":true}}' >"$GW_CONF"
GW_FLAGS=(-mesh natlab -http 127.0.0.1:8787 -trackers=false -dht=false -lan=false -telemetry=false -config "$GW_CONF")
GW_PORT=${GW_PORT:-4000}; GW_PUB_PORT=${GW_PUB_PORT:-4100}
"$LAB" bg pub2 gw-pub "$GW" "${GW_FLAGS[@]}" -listen-port "$GW_PUB_PORT"
sleep 0.5
gw_sites=()
for kind in $KINDS; do gw_sites+=("$kind" "${kind}2"); done
for site in "${gw_sites[@]}"; do
  "$LAB" bg "h-$site" "gw-$site" "$GW" "${GW_FLAGS[@]}" -listen-port "$GW_PORT" -static "203.0.113.20:$GW_PUB_PORT"
done
gw_node() {  # site expr fallback -> python expr over n (the node's /api/stats "node"), or fallback ({} = the error)
  "$LAB" exec "h-$1" python3 -c '
import json, sys, urllib.request
try:
    n = json.load(urllib.request.urlopen("http://127.0.0.1:8787/api/stats", timeout=2))["node"]
    print(eval(sys.argv[1]))
except Exception as e:
    print(sys.argv[2].replace("{}", str(e)))' "$2" "$3"
}
gw_class() {  # site -> nat_type, or "down"
  gw_node "$1" 'n["nat_type"]' down
}
# The NAT counters that decide a class (printed when a node ends wrong).
GW_WHY_KEYS='("observations", "binding_answers", "address_changes", "probes_requested", "probes_reached",
  "probes_missed", "probes_inconclusive", "fresh_requests", "fresh_seen", "fresh_reached",
  "fresh_missed", "fresh_inconclusive", "fresh_sockets_refused")'
gw_why() {  # site -> its peer count and those counters
  gw_node "$1" '"    peers %d; nat: %s" % (n["peer_count"], " ".join("%s=%s" % (k, n["counters"]["nat"].get(k)) for k in '"$GW_WHY_KEYS"'))' '    no stats: {}'
}
gw_expect() {
  case ${1%2} in symmetric) echo symmetric_nat;; *) echo "${1%2}";; esac
}
unset GOT AT
declare -A GOT AT
GW_POLL=$(mktemp -d -t moss-gw-poll.XXXXXX)
start=$(date +%s.%N)
for _ in $(seq 1 ${GW_WAIT_S:-90}); do
  # Every pending node at once (one namespace exec each takes seconds on
  # a loaded machine; polled one after another they would skew the times).
  pending=(); polls=()
  for site in "${gw_sites[@]}"; do
    [ -n "${AT[$site]:-}" ] && continue
    pending+=("$site")
    gw_class "$site" >"$GW_POLL/$site" &
    polls+=($!)
  done
  [ ${#pending[@]} = 0 ] && break
  wait "${polls[@]}" || true
  now=$(python3 -c "import time,sys; print('%.1f' % (time.time() - float(sys.argv[1])))" "$start")
  for site in "${pending[@]}"; do
    c=$(cat "$GW_POLL/$site" 2>/dev/null || echo down); GOT[$site]=$c
    [ "$c" = "$(gw_expect "$site")" ] && AT[$site]=$now
  done
  sleep 1
done
rm -rf "$GW_POLL"
printf '%-26s %-22s %-22s %s\n' host class expected "seconds to classify"
for site in "${gw_sites[@]}"; do
  want=$(gw_expect "$site")
  got=$(gw_class "$site")
  mark=ok
  if [ "$got" != "$want" ]; then
    mark="<-- expected $want"
    fail=1
  fi
  printf '%-26s %-22s %-22s %s %s\n' "h-$site" "$got" "$want" "${AT[$site]:--}" "$mark"
  [ "$mark" = ok ] || gw_why "$site"
done
# Stop the nodes this section started (by their pids), so later sections
# run on quiet NATs.
GW_STATE=${NATLAB_STATE:-/run/moss-natlab-${NATLAB_PREFIX%-}}
for name in gw-pub "${gw_sites[@]/#/gw-}"; do
  [ -f "$GW_STATE/$name.pid" ] && kill "$(cat "$GW_STATE/$name.pid")" 2>/dev/null || true
done
rm -f "$GW_CONF"
