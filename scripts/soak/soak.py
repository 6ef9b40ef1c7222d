#!/usr/bin/env python3
"""Soak: N real moss-gateways on loopback for T minutes, continuous
publishing, random `kill -9` restarts and SIGSTOP/SIGCONT flapping.

Topology: gateways 0 and 1 are anchors (never disturbed); every other
gateway has both as static peers (and finds the rest through peer
exchange). Two `moss pub` processes (one per anchor) publish numbered
messages on topic `soak` at RATE messages/s in total. Every gateway
subscribes (`-subscribe soak`); a poller per gateway reads
`/api/messages?topic=soak` every POLL seconds and records which numbers
arrived and when.

Disturbances hit gateways 2..N-1 only, one at a time, every GAP seconds:
`kill -9` then restart on the same port (a new identity), or SIGSTOP for
3-8 s then SIGCONT.

Results (JSON to --out, a summary on stdout):
- delivery among the stable set (gateways never disturbed): for every
  message published until SETTLE seconds before the end, the fraction of
  stable gateways that got it; the lost (gateway, message) pairs;
- per disturbed gateway: its recovery times (from restart or SIGCONT to
  the first new message seen), and its delivery of messages published from
  RECOVERED seconds after each disturbance until the next;
- per gateway: RSS and fd count after warm-up and at the end (growth),
  samples every SAMPLE seconds, and the growth over the second half of
  the samples of its current process (caches fill early; what still grows
  late would grow without bound).

--check makes the exit code 1 when a stable gateway missed a message, a
recovery never happened, or a stable gateway's RSS grew by more than
--max-rss-growth MiB or its fds by more than 8.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

from gwproc import free_port, http_get, proc_status

TOPIC = "soak"


def proc_figures(pid):
    try:
        st = proc_status(pid)
        return {"rss_mib": round(st["VmRSS"], 1), "fds": st["fds"]}
    except OSError:
        return None


class Gateway:
    def __init__(self, i, args, anchors):
        self.i = i
        self.udp = free_port(socket.SOCK_DGRAM)
        self.http = free_port(socket.SOCK_STREAM)
        self.args = args
        self.anchors = anchors
        self.proc = None
        self.up = False
        self.got = {}  # message number -> first seen (driver clock)
        self.lock = threading.Lock()
        self.log = open(os.path.join(args.workdir, f"gw-{i}.log"), "ab")
        self.start_figures = None
        self.samples = []  # (t, rss MiB, fds) of the current process, every SAMPLE s
        self.events = []  # (kind, t_disturb, t_resume, t_recovered)

    def start(self):
        cmd = [self.args.gateway, "-mesh", "soak-mesh", "-http", f"127.0.0.1:{self.http}",
               "-listen-port", str(self.udp), "-trackers=false", "-dht=false", "-lan=false",
               "-subscribe", TOPIC] + self.args.gateway_flag
        for a in self.anchors:
            if a.i != self.i:
                cmd += ["-static", f"127.0.0.1:{a.udp}"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env={**os.environ, "RUST_LOG": "warn"})
        self.up = True
        self.samples = []

    def poll(self, stop):
        while not stop.is_set():
            if self.up and self.proc and self.proc.poll() is None:
                _, msgs = http_get(self.http, f"/api/messages?topic={TOPIC}")
                now = time.time()
                if isinstance(msgs, list):
                    with self.lock:
                        for m in msgs:
                            t = m.get("text") or ""
                            if t.startswith("soak-"):
                                try:
                                    n = int(t.split("-")[1])
                                except ValueError:
                                    continue
                                self.got.setdefault(n, now)
            stop.wait(self.args.poll)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--moss", required=True)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=10.0, help="messages/s, both publishers together")
    ap.add_argument("--gap", type=float, default=20.0, help="seconds between disturbances")
    ap.add_argument("--poll", type=float, default=0.25)
    ap.add_argument("--sample", type=float, default=30.0, help="seconds between RSS/fd samples")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--recovered", type=float, default=40.0,
                    help="a disturbed gateway's delivery counts from this long after it resumed")
    ap.add_argument("--max-rss-growth", type=float, default=64.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--gateway-flag", action="append", default=[])
    args = ap.parse_args()
    assert args.nodes >= 3, "need two anchors and one gateway to disturb"
    rng = random.Random(args.seed)
    os.makedirs(args.workdir, exist_ok=True)

    gws = []
    anchors = []
    for i in range(args.nodes):
        g = Gateway(i, args, anchors)
        gws.append(g)
        if i < 2:
            anchors.append(g)
    for g in gws:
        g.start()
    stop = threading.Event()
    pollers = [threading.Thread(target=g.poll, args=(stop,), daemon=True) for g in gws]
    for p in pollers:
        p.start()
    pubs = []
    for a in anchors:
        pubs.append(subprocess.Popen(
            [args.moss, "pub", TOPIC, "--mesh", "soak-mesh", "--static", f"127.0.0.1:{a.udp}",
             "--no-trackers", "--no-dht", "--no-lan", "--wait", "60", "-q"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(args.workdir, f"pub-{a.i}.log"), "ab")))

    published = {}  # number -> time
    t_start = time.time()
    t_end = t_start + args.minutes * 60
    t_warm = t_start + args.warmup
    next_pub = t_start
    next_disturb = t_warm + args.gap / 2
    active = None  # (gateway, kind, t_disturb, t_resume_due)
    n = 0
    restarts = stops = 0
    next_sample = t_warm
    try:
        while time.time() < t_end:
            now = time.time()
            if now >= next_pub:
                p = pubs[n % len(pubs)]
                try:
                    p.stdin.write(f"soak-{n}-{int(now * 1000)}\n".encode())
                    p.stdin.flush()
                    published[n] = now
                except OSError:
                    pass
                n += 1
                next_pub += 1.0 / args.rate
            if all(g.start_figures is not None for g in gws) is False and now >= t_warm:
                for g in gws:
                    if g.start_figures is None and g.proc:
                        g.start_figures = proc_figures(g.proc.pid)
            if now >= next_sample:
                next_sample += args.sample
                for g in gws:
                    f = proc_figures(g.proc.pid) if g.up and g.proc else None
                    if f:
                        g.samples.append((now - t_start, f["rss_mib"], f["fds"]))
            if active and now >= active[3]:
                g, kind, t0, _ = active
                if kind == "kill":
                    g.start()
                else:
                    os.kill(g.proc.pid, signal.SIGCONT)
                    g.up = True
                g.events.append({"kind": kind, "t_disturb": t0, "t_resume": now})
                active = None
            if not active and now >= next_disturb and now < t_end - args.recovered:
                g = gws[rng.randrange(2, args.nodes)]
                kind = rng.choice(["kill", "stop"])
                if kind == "kill":
                    g.proc.send_signal(signal.SIGKILL)
                    g.proc.wait()
                    g.up = False
                    restarts += 1
                    active = (g, kind, now, now + rng.uniform(1, 3))
                else:
                    os.kill(g.proc.pid, signal.SIGSTOP)
                    g.up = False
                    stops += 1
                    active = (g, kind, now, now + rng.uniform(3, 8))
                next_disturb = now + args.gap
            time.sleep(min(0.01, max(0.0, next_pub - time.time())))
        if active:
            g, kind, t0, _ = active
            if kind == "stop":
                os.kill(g.proc.pid, signal.SIGCONT)
            else:
                g.start()
            g.events.append({"kind": kind, "t_disturb": t0, "t_resume": time.time()})
        time.sleep(args.settle)
        end_figures = {g.i: proc_figures(g.proc.pid) for g in gws}
    finally:
        stop.set()
        for p in pubs:
            try:
                p.stdin.close()
            except OSError:
                pass
            p.kill()
        for g in gws:
            if g.proc and g.proc.poll() is None:
                try:
                    os.kill(g.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
                g.proc.kill()
                g.proc.wait()

    # Messages published after warm-up, until settle seconds before the end.
    counted = {k: t for k, t in published.items() if t_warm <= t <= t_end - args.settle}
    stable = [g for g in gws if not g.events]
    lost = []
    for g in stable:
        for k in counted:
            if k not in g.got:
                lost.append([g.i, k])
    stable_pairs = len(stable) * len(counted)
    report = {
        "nodes": args.nodes, "minutes": args.minutes, "rate": args.rate, "seed": args.seed,
        "published": len(published), "counted": len(counted),
        "restarts": restarts, "stops": stops,
        "stable_gateways": [g.i for g in stable],
        "stable_delivery_ratio": (1 - len(lost) / stable_pairs) if stable_pairs else None,
        "stable_lost": lost[:200], "stable_lost_count": len(lost),
        "gateways": [],
    }
    recoveries = []
    never = 0
    for g in gws:
        evs = []
        for j, e in enumerate(g.events):
            nxt = g.events[j + 1]["t_disturb"] if j + 1 < len(g.events) else t_end
            seen = sorted(t for k, t in g.got.items() if published.get(k, 0) >= e["t_resume"] and t >= e["t_resume"])
            rec = (seen[0] - e["t_resume"]) if seen else None
            if rec is None:
                never += 1
            else:
                recoveries.append(rec)
            window = [k for k, t in counted.items() if e["t_resume"] + args.recovered <= t < nxt - args.settle]
            got = sum(1 for k in window if k in g.got)
            evs.append({"kind": e["kind"], "down_sec": round(e["t_resume"] - e["t_disturb"], 2),
                        "recovery_sec": None if rec is None else round(rec, 2),
                        "delivery_after_recovery": (got / len(window)) if window else None,
                        "window_messages": len(window)})
        s, e = g.start_figures, end_figures.get(g.i)
        # Growth over the second half of the current process's life (caches
        # fill early; what still grows late is what would grow unbounded).
        half = None
        if len(g.samples) >= 4:
            mid = g.samples[len(g.samples) // 2]
            last = g.samples[-1]
            half = {"from_sec": round(mid[0]), "to_sec": round(last[0]),
                    "rss_mib": round(last[1] - mid[1], 1), "fds": last[2] - mid[2]}
        report["gateways"].append({
            "gateway": g.i, "anchor": g.i < 2, "disturbances": evs,
            "received": sum(1 for k in counted if k in g.got),
            "start": s, "end": e,
            "rss_growth_mib": round(e["rss_mib"] - s["rss_mib"], 1) if s and e and not g.events else None,
            "fd_growth": (e["fds"] - s["fds"]) if s and e and not g.events else None,
            "second_half_growth": half,
            "samples": [[round(t), r, f] for t, r, f in g.samples],
        })
    recoveries.sort()
    report["recovery_sec"] = {
        "count": len(recoveries), "never": never,
        "p50": recoveries[len(recoveries) // 2] if recoveries else None,
        "max": recoveries[-1] if recoveries else None,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    growth = [(g["rss_growth_mib"], g["fd_growth"]) for g in report["gateways"] if g["rss_growth_mib"] is not None]
    halves = [g["second_half_growth"] for g in report["gateways"] if g["second_half_growth"]]
    print(f"soak: {args.nodes} gateways, {args.minutes} min, {len(published)} published ({len(counted)} counted), "
          f"{restarts} kill -9 restarts, {stops} SIGSTOP/SIGCONT")
    print(f"soak: stable gateways {report['stable_gateways']}: delivery {report['stable_delivery_ratio']}, "
          f"{len(lost)} lost (gateway, message) pairs")
    r = report["recovery_sec"]
    print(f"soak: recoveries {r['count']} (never: {never}), p50 {r['p50']}, max {r['max']} s")
    if growth:
        print(f"soak: stable RSS growth max {max(x for x, _ in growth)} MiB, fd growth max {max(y for _, y in growth)}")
    if halves:
        print(f"soak: second-half growth over {len(halves)} processes: RSS max {max(h['rss_mib'] for h in halves)} MiB, "
              f"median {sorted(h['rss_mib'] for h in halves)[len(halves) // 2]} MiB; fds max {max(h['fds'] for h in halves)}")
    print(f"soak: results in {args.out}")
    if args.check:
        bad = []
        if lost:
            bad.append(f"{len(lost)} messages lost among stable gateways")
        if never:
            bad.append(f"{never} disturbed gateways never received again")
        for x, y in growth:
            if x > args.max_rss_growth or y > 8:
                bad.append(f"growth: rss {x} MiB, fds {y}")
        if not counted:
            bad.append("nothing was published")
        if bad:
            print("soak: FAIL: " + "; ".join(bad))
            sys.exit(1)
        print("soak: PASS")


if __name__ == "__main__":
    main()
