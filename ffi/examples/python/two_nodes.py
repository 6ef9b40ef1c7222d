"""Two Moss nodes in one Python process over loopback, through the `moss`
package (ffi/python: ctypes over libmoss.so).

Run: MOSS_LIB=target/debug/libmoss.so python3 ffi/examples/python/two_nodes.py
(or `pip install ./ffi/python` first). Exits 0 once a message went each way
with the right sender ids, 1 otherwise (bounded wait).
"""

import os
import sys
import threading
import time

try:
    import moss
except ImportError:  # not installed: use the package from the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python", "src"))
    import moss


def main() -> int:
    print(moss.version())
    errors = []
    got_at_a, got_at_b = threading.Event(), threading.Event()
    with moss.Node("py-two-nodes", config=moss.OFFLINE) as a, moss.Node("py-two-nodes", config=moss.OFFLINE) as b:
        key_a, key_b = a.public_key, b.public_key

        def on_a(m: moss.Message) -> None:
            if m.topic == "chat" and m.data == b"pong" and m.sender.hex() == key_b:
                got_at_a.set()

        def on_b(m: moss.Message) -> None:
            if m.topic == "chat" and m.data == b"hello" and m.sender.hex() == key_a:
                got_at_b.set()
                # Re-entrant call from the callback thread.
                try:
                    b.publish("chat", b"pong")
                except moss.MossError as e:
                    errors.append(e)

        a.on_message(on_a)
        b.on_message(on_b)
        a.on_event(lambda e: print("a event", e.kind, e.detail))
        b.on_event(lambda e: print("b event", e.kind, e.detail))
        a.subscribe("chat")
        b.subscribe("chat")
        b.connect(f"127.0.0.1:{a.listen_port}")
        for _ in range(100):
            if got_at_b.is_set():
                break
            a.publish("chat", b"hello")
            time.sleep(0.1)
        got_at_a.wait(10)
        print("stats", a.network_stats(), "nat", a.nat_type(), "info", b.mesh_info())
    ok = got_at_a.is_set() and got_at_b.is_set() and not errors
    print("hello delivered:", got_at_b.is_set(), "pong delivered:", got_at_a.is_set(), "errors:", errors)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
