#!/usr/bin/env bash
# Soak run: N moss-gateways on loopback for T minutes with continuous
# publishing, kill -9 restarts and SIGSTOP/SIGCONT flapping (soak.py says
# how it counts). Usage:
#   scripts/soak/run.sh [--nodes N] [--minutes T] [--check] [soak.py flags...]
# Results: scripts/soak/results/<date>-<N>x<T>min.json (or --out FILE).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bin_dir=${MOSS_BIN_DIR:-$ROOT/target/debug}
if [ ! -x "$bin_dir/moss" ] || [ ! -x "$bin_dir/moss-gateway" ]; then
  echo "-- building moss and moss-gateway"
  cargo build -q -p moss-cli -p moss-gateway
  bin_dir=$ROOT/target/debug
fi
nodes=20 minutes=30 rest=()
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes=$2; shift 2;;
    --minutes) minutes=$2; shift 2;;
    *) rest+=("$1"); shift;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p scripts/soak/results
out=scripts/soak/results/$(date -u +%Y%m%d-%H%M)-${nodes}x${minutes}min.json
# Bounded: the driver stops after --minutes, plus a margin for settling.
limit=$(python3 -c "print(int(float('$minutes') * 60 + 120))")
timeout -k 10 "$limit" python3 scripts/soak/soak.py --gateway "$bin_dir/moss-gateway" --moss "$bin_dir/moss" \
  --nodes "$nodes" --minutes "$minutes" --workdir "$work" --out "$out" "${rest[@]}" || {
  rc=$?
  for f in "$work"/*.log; do [ -s "$f" ] && { echo "---- $f"; tail -n 5 "$f"; }; done
  exit $rc
}
