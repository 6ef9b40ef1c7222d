#!/usr/bin/env python3
"""Cost of on-demand meshes (`?meshid=`) in a real moss-gateway.

Starts the gateway (offline: no trackers, DHT or LAN beacons) with
-max-meshes LIMIT, samples its RSS, threads and fds idle, then sends
REQUESTS concurrent `GET /api/stats?meshid=bench-<i>` (every id new) and
reports the peak RSS (VmHWM), the peak thread count (sampled every 5 ms
while the burst runs), threads and fds afterwards and again 11 s later
("settled": tokio's idle blocking threads have exited), and how many
requests got a mesh (200) or the limit (503). One JSON line per run on
stdout.

usage: meshes-bench.py GATEWAY_BINARY LIMIT REQUESTS [-- extra gateway flags]
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "soak"))
from gwproc import free_port, http_get, proc_status, stop  # noqa: E402


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1 :]
    binary, limit, requests = args[0], int(args[1]), int(args[2])
    http = free_port(socket.SOCK_STREAM)
    udp = free_port(socket.SOCK_DGRAM)
    cmd = [binary, "-mesh", "primary", "-http", f"127.0.0.1:{http}", "-listen-port", str(udp),
           "-trackers=false", "-dht=false", "-lan=false", "-telemetry=false",
           "-max-meshes", str(limit)] + extra
    gw = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "RUST_LOG": "error"})
    try:
        deadline = time.time() + 30
        while http_get(http, "/api/stats", 1.0)[0] != 200:
            if time.time() > deadline or gw.poll() is not None:
                raise SystemExit("gateway did not come up")
            time.sleep(0.1)
        time.sleep(0.5)
        idle = proc_status(gw.pid)
        codes = []
        lock = threading.Lock()
        go = threading.Event()

        def one(i):
            go.wait()
            c = http_get(http, f"/api/stats?meshid=bench-{i}", 30.0)[0]
            with lock:
                codes.append(c)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(requests)]
        for t in ts:
            t.start()
        peak_threads = 0
        done = threading.Event()

        def sample():
            nonlocal peak_threads
            while not done.is_set():
                try:
                    peak_threads = max(peak_threads, proc_status(gw.pid)["Threads"])
                except OSError:
                    pass
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.time()
        go.set()
        for t in ts:
            t.join()
        burst = time.time() - t0
        time.sleep(0.5)
        done.set()
        sampler.join()
        after = proc_status(gw.pid)
        # tokio's idle blocking-pool threads (one per concurrent request)
        # exit after 10 s: what stays is what the meshes cost.
        time.sleep(11)
        settled = proc_status(gw.pid)
        print(json.dumps({
            "limit": limit, "requests": requests, "extra": extra,
            "ok": codes.count(200), "limited": codes.count(503),
            "other": len(codes) - codes.count(200) - codes.count(503),
            "idle_rss_mib": round(idle["VmRSS"]), "idle_threads": idle["Threads"], "idle_fds": idle["fds"],
            "peak_rss_mib": round(after["VmHWM"]), "peak_threads": peak_threads,
            "after_rss_mib": round(after["VmRSS"]), "after_threads": after["Threads"], "after_fds": after["fds"],
            "settled_rss_mib": round(settled["VmRSS"]), "settled_threads": settled["Threads"],
            "settled_fds": settled["fds"],
            "burst_sec": round(burst, 2),
        }))
    finally:
        stop(gw)


if __name__ == "__main__":
    main()
