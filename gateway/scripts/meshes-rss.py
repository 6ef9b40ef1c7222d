#!/usr/bin/env python3
"""Resident memory per on-demand mesh, built one at a time.

Starts the gateway (offline, telemetry off, -max-meshes 300, plus any
extra flags), then sends 100 `/api/stats` requests for one mesh (what the
requests alone cost) and 100 for new ids one after another, and prints
the VmRSS growth of each phase. One request at a time, so the growth is
the meshes' and not the heap fragmentation a concurrent burst leaves
(meshes-bench.py measures bursts).

usage: meshes-rss.py GATEWAY_BINARY [extra gateway flags]
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "soak"))
from gwproc import free_port, http_get, proc_status, stop  # noqa: E402

MESHES = 100


def main():
    binary, extra = sys.argv[1], sys.argv[2:]
    http = free_port(socket.SOCK_STREAM)
    udp = free_port(socket.SOCK_DGRAM)
    cmd = [binary, "-mesh", "primary", "-http", f"127.0.0.1:{http}", "-listen-port", str(udp),
           "-trackers=false", "-dht=false", "-lan=false", "-telemetry=false",
           "-max-meshes", "300"] + extra
    gw = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "RUST_LOG": "error"})
    try:
        deadline = time.time() + 30
        while http_get(http, "/api/stats", 1.0)[0] != 200:
            if time.time() > deadline or gw.poll() is not None:
                raise SystemExit("gateway did not come up")
            time.sleep(0.1)
        time.sleep(0.5)
        idle = proc_status(gw.pid)["VmRSS"]
        for _ in range(MESHES):
            http_get(http, "/api/stats?meshid=same", 5.0)
        same = proc_status(gw.pid)["VmRSS"]
        for i in range(MESHES):
            if http_get(http, f"/api/stats?meshid=seq-{i}", 5.0)[0] != 200:
                raise SystemExit(f"mesh seq-{i} did not come up")
        time.sleep(1)
        built = proc_status(gw.pid)["VmRSS"]
        print(f"extra {extra}: idle {idle:.0f} MiB; {MESHES} requests to one mesh +{same - idle:.1f} MiB; "
              f"{MESHES} new meshes one at a time +{built - same:.1f} MiB "
              f"({(built - same) * 1024 / MESHES:.0f} KiB each)")
    finally:
        stop(gw)


if __name__ == "__main__":
    main()
