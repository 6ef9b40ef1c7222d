# Sourced by the scripts that build a natlab or other namespaces
# (nat/scripts/extra-tests.sh, punch-timings.sh, engine/scripts/tcp-netns.sh,
# nat/scripts/relay-lab.sh, webrtc/scripts/nat-lab.sh): can this machine
# run one? One copy of the checks, so every lab skips the same way.
#
# lab_preflight WHAT PREFIX TOOL...: returns when we are root, `ip`, `nft`
# and every TOOL are installed and a network namespace named PREFIX-probe
# can be made; otherwise prints "SKIP: WHAT: why" and exits 0, or, under
# CI=true (where a skipped real component is a failure), prints a FAIL
# line and exits 1.
lab_preflight() {
  local what=$1 prefix=$2 tool probe
  shift 2
  if [ "$(id -u)" != 0 ]; then
    lab_skip "$what" "needs root for network namespaces"
  fi
  for tool in ip nft "$@"; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] \
      || lab_skip "$what" "$tool missing (run nat/scripts/install-test-deps.sh)"
  done
  probe="${prefix}probe-$$"
  ip netns add "$probe" 2>/dev/null || lab_skip "$what" "cannot create network namespaces"
  ip netns del "$probe"
}

# lab_skip WHAT WHY: the visible skip (exit 0), or exit 1 under CI=true.
lab_skip() {
  echo "SKIP: $1: $2"
  if [ "${CI:-}" = true ]; then
    echo "FAIL: CI=true and the $1 cannot run"
    exit 1
  fi
  exit 0
}
