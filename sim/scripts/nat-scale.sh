#!/usr/bin/env bash
# The 10 000-node NAT run of the simulator (sim/tests/nat_scale.rs) in a
# release build; MOSS_SIM_NODES=N for another size. Prints the report with
# the per-class-pair punch table and the load average before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
nice -n 10 cargo test --release -q -p moss-sim --test nat_scale -- --ignored --nocapture
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
