"""Two Moss nodes in one Python process over loopback, through ctypes.

Run: MOSS_LIB=target/debug/libmoss.so python3 ffi/examples/python/two_nodes.py
Exits 0 once a message went each way with the right sender ids, 1 otherwise
(bounded wait).
"""

import sys
import threading
import time

import moss

CONFIG = {"trackers": [], "lan_discovery_enabled": False, "dht_enabled": False}


def main():
    print(moss.version())
    a = moss.Node("py-two-nodes", config=CONFIG)
    b = moss.Node("py-two-nodes", config=CONFIG)
    key_a, key_b = a.public_key(), b.public_key()
    got_at_a, got_at_b = threading.Event(), threading.Event()
    errors = []

    def on_a(channel, sender, data):
        if channel == "chat" and data == b"pong" and sender.hex() == key_b:
            got_at_a.set()

    def on_b(channel, sender, data):
        if channel == "chat" and data == b"hello" and sender.hex() == key_a:
            got_at_b.set()
            # Re-entrant call from the callback thread.
            rc = b.publish("chat", b"pong")
            if rc != moss.MOSS_OK:
                errors.append(rc)

    a.on_message(on_a)
    b.on_message(on_b)
    a.on_event(lambda t, d: print("a event", t, d))
    b.on_event(lambda t, d: print("b event", t, d))
    a.subscribe("chat")
    b.subscribe("chat")
    a.start()
    b.start()
    port = a.mesh_info()["listen_port"]
    b.connect(f"127.0.0.1:{port}")

    for _ in range(100):
        if got_at_b.is_set():
            break
        rc = a.publish("chat", b"hello")
        if rc not in (moss.MOSS_OK, moss.MOSS_ERR_NO_PEERS):
            print("publish failed", rc)
            return 1
        time.sleep(0.1)
    got_at_a.wait(10)
    print("stats", a.network_stats(), "nat", a.nat_type(), "info", b.mesh_info())

    ok = got_at_a.is_set() and got_at_b.is_set() and not errors
    ok = a.stop() == moss.MOSS_OK and ok
    ok = b.stop() == moss.MOSS_OK and ok
    ok = a.stop() == moss.MOSS_ERR_INVALID_HANDLE and ok
    print("hello delivered:", got_at_b.is_set(), "pong delivered:", got_at_a.is_set(), "errors:", errors)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
