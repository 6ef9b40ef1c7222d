"""Helpers the soak and the gateway mesh bench share: free loopback ports,
a minimal HTTP GET against a gateway, a process's /proc figures, and stopping a child process."""
import json
import os
import socket
import subprocess


_GIVEN = set()


def free_port(kind):
    """A port free on 127.0.0.1 right now (kind: socket.SOCK_STREAM or
    SOCK_DGRAM), never one this process was given before: a just-released
    port can come back from the next bind to port 0."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _GIVEN:
            _GIVEN.add(p)
            return p
    raise RuntimeError("no fresh loopback port found")


def http_get(port, path, timeout=2.0):
    """GET path on 127.0.0.1:port; (status, parsed JSON body or None); status 0 on failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            buf = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def proc_status(pid):
    """VmRSS and VmHWM (MiB), Threads and the fd count of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
            elif k == "Threads":
                out[k] = int(v)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def stop(proc, grace=10):
    """Stops a child process: SIGTERM, then SIGKILL after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
