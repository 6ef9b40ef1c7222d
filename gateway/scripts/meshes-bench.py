#!/usr/bin/env python3
"""Cost of on-demand meshes (`?meshid=`) in a real moss-gateway.

Starts the gateway (offline: no trackers, DHT or LAN beacons) with
-max-meshes LIMIT, samples its RSS, threads and fds idle, then sends
REQUESTS concurrent `GET /api/stats?meshid=bench-<i>` (every id new) and
reports the peak RSS (VmHWM), the peak thread count (sampled every 5 ms
while the burst runs), threads and fds afterwards, and how many requests
got a mesh (200) or the limit (503). One JSON line per run on stdout.

usage: meshes-bench.py GATEWAY_BINARY LIMIT REQUESTS [-- extra gateway flags]
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, timeout=30.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            buf = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
        return int(buf.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return 0


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024  # MiB
            elif k == "Threads":
                out[k] = int(v)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


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
        while get(http, "/api/stats", 1.0) != 200:
            if time.time() > deadline or gw.poll() is not None:
                raise SystemExit("gateway did not come up")
            time.sleep(0.1)
        time.sleep(0.5)
        idle = status(gw.pid)
        codes = []
        lock = threading.Lock()
        go = threading.Event()

        def one(i):
            go.wait()
            c = get(http, f"/api/stats?meshid=bench-{i}")
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
                    peak_threads = max(peak_threads, status(gw.pid)["Threads"])
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
        after = status(gw.pid)
        print(json.dumps({
            "limit": limit, "requests": requests, "extra": extra,
            "ok": codes.count(200), "limited": codes.count(503),
            "other": len(codes) - codes.count(200) - codes.count(503),
            "idle_rss_mib": idle["VmRSS"], "idle_threads": idle["Threads"], "idle_fds": idle["fds"],
            "peak_rss_mib": after["VmHWM"], "peak_threads": peak_threads,
            "after_rss_mib": after["VmRSS"], "after_threads": after["Threads"], "after_fds": after["fds"],
            "burst_sec": round(burst, 2),
        }))
    finally:
        gw.terminate()
        try:
            gw.wait(10)
        except subprocess.TimeoutExpired:
            gw.kill()


if __name__ == "__main__":
    main()
