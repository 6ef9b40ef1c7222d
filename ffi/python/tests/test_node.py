"""The moss package against the real libmoss.so: two nodes on loopback."""

from __future__ import annotations

import threading
import time
from typing import Callable, List

import pytest

import moss

WAIT = 10.0


def wait_until(cond: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_version_names_the_library() -> None:
    assert moss.version().startswith("moss ")


def test_two_nodes_exchange_a_message_with_its_sender() -> None:
    got: List[moss.Message] = []
    arrived = threading.Event()
    events: List[moss.Event] = []

    def on_message(m: moss.Message) -> None:
        got.append(m)
        arrived.set()

    with moss.Node("py-test", config=moss.OFFLINE) as alice, moss.Node("py-test", config=moss.OFFLINE) as bob:
        alice.on_message(on_message)
        bob.on_event(events.append)
        alice.subscribe("chat")
        bob.connect(f"127.0.0.1:{alice.listen_port}")
        assert wait_until(lambda: any(e.kind == moss.EventKind.PEER_JOINED for e in events))
        joined = next(e for e in events if e.kind == moss.EventKind.PEER_JOINED)
        assert joined.detail["peer_id"] == alice.public_key
        # Publish until alice's subscription has reached bob and the message lands.
        assert wait_until(lambda: bob.publish("chat", "hello") and arrived.wait(0.1))
        m = got[0]
        assert (m.topic, m.text, m.sender.hex()) == ("chat", "hello", bob.public_key)
        assert alice.mesh_info()["peer_count"] == 1
        assert isinstance(alice.nat_type(), str)


def test_leaving_the_with_block_stops_the_node() -> None:
    with moss.Node("py-test", config=moss.OFFLINE) as n:
        assert n.listen_port > 0
    with pytest.raises(moss.MossError) as e:
        n.subscribe("chat")
    assert e.value.code == moss.Code.INVALID_HANDLE
    n.stop()  # a second stop is a no-op


def test_publish_without_peers_is_false_not_an_error() -> None:
    with moss.Node("py-test", config=moss.OFFLINE) as n:
        assert n.publish("chat", b"\x00\x01") is False


def test_bad_input_raises_typed_errors() -> None:
    with pytest.raises(ValueError):
        moss.Node("py-test", psk=b"short")
    with pytest.raises(moss.MossError) as e:
        moss.Node("py-test", config={"listen_port": "not a port"})
    assert e.value.code == moss.Code.CONFIG_INVALID
    assert "listen_port" in str(e.value)
    with moss.Node("py-test", config=moss.OFFLINE) as n:
        with pytest.raises(moss.MossError) as e:
            n.subscribe("")
        assert e.value.code == moss.Code.INVALID_CHANNEL


def test_a_callback_that_raises_does_not_stop_delivery() -> None:
    seen: List[bytes] = []

    def flaky(m: moss.Message) -> None:
        seen.append(m.data)
        raise RuntimeError("host bug")

    with moss.Node("py-test", config=moss.OFFLINE) as a, moss.Node("py-test", config=moss.OFFLINE) as b:
        a.on_message(flaky)
        a.subscribe("chat")
        b.connect(f"127.0.0.1:{a.listen_port}")
        assert wait_until(lambda: b.publish("chat", b"one") and len(seen) >= 1)
        n = len(seen)
        assert wait_until(lambda: b.publish("chat", b"two") and len(seen) > n)
