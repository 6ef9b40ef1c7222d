"""Moss for Python: a zero-infrastructure peer-to-peer mesh node, over the
Moss C ABI (libmoss.so) with ctypes.

    import moss

    with moss.Node("demo", config=moss.OFFLINE) as node:
        node.on_message(lambda m: print(m.topic, m.sender.hex(), m.data))
        node.subscribe("chat")
        node.connect("127.0.0.1:41001")
        node.publish("chat", b"hello")

The library is found through $MOSS_LIB, next to the package, in
$CARGO_TARGET_DIR or in target/{debug,release} of the current directory or
a parent (see `moss._lib.candidates`). Callbacks run on Moss's dispatch
thread, one per started node.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Dict, List, Optional, Union

from . import _lib

__all__ = [
    "Code",
    "Event",
    "EventKind",
    "Message",
    "MossError",
    "Node",
    "OFFLINE",
    "version",
]

_log = logging.getLogger("moss")

OFFLINE: Dict[str, Any] = {"trackers": [], "dht_enabled": False, "lan_discovery_enabled": False}
"""A config with every discovery channel off: peers come from `connect`."""


class Code(IntEnum):
    """The C ABI's result codes."""

    OK = 0
    INVALID_HANDLE = -1
    ALREADY_STARTED = -2
    NOT_STARTED = -3
    INVALID_CHANNEL = -4
    MESSAGE_TOO_LARGE = -5
    NO_PEERS = -6
    TRACKER_FAIL = -7
    CONFIG_INVALID = -8
    OUT_OF_MEMORY = -9
    CONNECT_FAILED = -10
    NOT_AVAILABLE = -11
    INTERNAL = -12
    LISTEN_FAILED = -13
    INVALID_ARGUMENT = -14


class EventKind(IntEnum):
    """Event numbers passed to event callbacks."""

    PEER_JOINED = 1
    PEER_LEFT = 2
    TRACKER_ANNOUNCE = 5
    TRACKER_FAILURE = 6
    OVERFLOW = 100


class MossError(Exception):
    """A failed C ABI call: `code` is the result (a `Code` when known), the
    text is Moss_LastError's."""

    def __init__(self, op: str, code: int, text: str = ""):
        try:
            self.code: Union[Code, int] = Code(code)
        except ValueError:
            self.code = code
        self.op = op
        name = self.code.name if isinstance(self.code, Code) else str(code)
        super().__init__(f"{op} failed with {name} ({code}){': ' + text if text else ''}")


@dataclass(frozen=True)
class Message:
    """A message on a subscribed topic."""

    topic: str
    sender: bytes
    data: bytes

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (invalid bytes replaced)."""
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True)
class Event:
    """A host event (peer joined/left, tracker result, overflow)."""

    kind: Union[EventKind, int]
    detail: Dict[str, Any]


_lib_handle: Optional[ctypes.CDLL] = None
_lib_lock = threading.Lock()


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use)."""
    global _lib_handle
    with _lib_lock:
        if _lib_handle is None:
            _lib_handle = _lib.load()
        return _lib_handle


def version() -> str:
    """The library's version string."""
    return lib().Moss_Version().decode()


def _take(ptr: Optional[int]) -> Optional[str]:
    """Copies a Moss-owned string and releases it with Moss_Free."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        lib().Moss_Free(ptr)


class Node:
    """One Moss node. `with Node(...) as n:` starts it and stops it on exit;
    or call `start()` and `stop()`. After `stop()` the handle is gone."""

    def __init__(
        self,
        mesh_id: str,
        *,
        psk: Optional[bytes] = None,
        config: Optional[Dict[str, Any]] = None,
    ) -> None:
        if psk is not None and len(psk) != 32:
            raise ValueError("psk must be 32 bytes")
        self._lib = lib()
        cfg = None if config is None else json.dumps(config).encode()
        psk_buf = None if psk is None else ctypes.c_char_p(bytes(psk))
        h = self._lib.Moss_Init(mesh_id.encode(), psk_buf, cfg)
        if h <= 0:
            raise self._error("Moss_Init", h)
        self._handle: Optional[int] = h
        # ctypes callback objects must outlive their use by the library.
        self._callbacks: List[Any] = []

    def _error(self, op: str, rc: int) -> MossError:
        return MossError(op, rc, (self._lib.Moss_LastError() or b"").decode("utf-8", "replace"))

    @property
    def handle(self) -> int:
        """The C handle; `MossError(INVALID_HANDLE)` once stopped."""
        if self._handle is None:
            raise MossError("handle", Code.INVALID_HANDLE, "the node was stopped")
        return self._handle

    def _check(self, op: str, rc: int) -> None:
        if rc != Code.OK:
            raise self._error(op, rc)

    def start(self) -> "Node":
        """Opens the socket and starts the node."""
        self._check("Moss_Start", self._lib.Moss_Start(self.handle))
        return self

    def stop(self) -> None:
        """Stops the node and frees the handle; no callback runs after this
        returns. Stopping twice is a no-op."""
        if self._handle is None:
            return
        rc = self._lib.Moss_Stop(self._handle)
        self._handle = None
        self._callbacks.clear()
        if rc not in (Code.OK, Code.NOT_STARTED):
            raise self._error("Moss_Stop", rc)

    def __enter__(self) -> "Node":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def subscribe(self, topic: str) -> None:
        """Joins `topic`; its messages go to the `on_message` callback."""
        self._check("Moss_Subscribe", self._lib.Moss_Subscribe(self.handle, topic.encode()))

    def unsubscribe(self, topic: str) -> None:
        """Leaves `topic`."""
        self._check("Moss_Unsubscribe", self._lib.Moss_Unsubscribe(self.handle, topic.encode()))

    def publish(self, topic: str, data: Union[bytes, str]) -> bool:
        """Publishes `data`; False when no peer is connected (nothing sent),
        `MossError` for anything else that fails."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        rc = self._lib.Moss_Publish(self.handle, topic.encode(), raw, len(raw))
        if rc == Code.NO_PEERS:
            return False
        self._check("Moss_Publish", rc)
        return True

    def connect(self, host_port: str) -> None:
        """Dials `host:port` (returns at once; `on_event` reports the peer)."""
        self._check("Moss_Connect", self._lib.Moss_Connect(self.handle, host_port.encode()))

    def on_message(self, fn: Callable[[Message], None]) -> None:
        """Calls `fn(Message)` for every message of a subscribed topic, on
        Moss's dispatch thread. An exception in `fn` is logged (logger
        "moss") and delivery goes on."""

        def tramp(channel: bytes, sender: Any, data: Any, length: int) -> None:
            try:
                fn(Message(channel.decode("utf-8", "replace"), ctypes.string_at(sender, 32), ctypes.string_at(data, length)))
            except Exception:  # an exception must not unwind into C
                _log.exception("moss: message callback raised")

        cb = _lib.MessageCallback(tramp)
        self._callbacks.append(cb)
        self._check("Moss_SetCallback", self._lib.Moss_SetCallback(self.handle, cb))

    def on_event(self, fn: Callable[[Event], None]) -> None:
        """Calls `fn(Event)` for host events, on Moss's dispatch thread."""

        def tramp(kind: int, detail: bytes) -> None:
            try:
                k: Union[EventKind, int] = EventKind(kind)
            except ValueError:
                k = kind
            try:
                fn(Event(k, json.loads(detail.decode()) if detail else {}))
            except Exception:  # an exception must not unwind into C
                _log.exception("moss: event callback raised")

        cb = _lib.EventCallback(tramp)
        self._callbacks.append(cb)
        self._check("Moss_SetEventCallback", self._lib.Moss_SetEventCallback(self.handle, cb))

    def mesh_info(self) -> Dict[str, Any]:
        """Moss_GetMeshInfo: mesh id, listen port, peers, channels, NAT type, public key."""
        info = _take(self._lib.Moss_GetMeshInfo(self.handle))
        if info is None:
            raise self._error("Moss_GetMeshInfo", Code.NOT_STARTED)
        return json.loads(info)

    @property
    def listen_port(self) -> int:
        """The bound UDP port (the node must be started)."""
        return int(self.mesh_info()["listen_port"])

    def network_stats(self) -> Any:
        """Moss_GetNetworkStats: the telemetry snapshot (None when unavailable)."""
        return json.loads(_take(self._lib.Moss_GetNetworkStats(self.handle)) or "null")

    @property
    def public_key(self) -> str:
        """This node's peer id, hex."""
        key = _take(self._lib.Moss_GetPublicKey(self.handle))
        if key is None:
            raise self._error("Moss_GetPublicKey", Code.INVALID_HANDLE)
        return key

    def nat_type(self) -> str:
        """Moss_GetNATType: the NAT classification (`unknown` until known)."""
        return _take(self._lib.Moss_GetNATType(self.handle)) or "unknown"
