"""A small ctypes wrapper of libmoss (the Moss C ABI).

The library is found through $MOSS_LIB (a path to libmoss.so), else by the
name "moss" on the loader's path (set LD_LIBRARY_PATH). Build it with
`cargo build -p moss-ffi`; it lands in the cargo target dir (e.g.
target/debug/libmoss.so).

Callbacks run on Moss's dispatch thread (one per started node); ctypes takes
the GIL around them. Keep a reference to every callback object while the
node runs: this wrapper does that for you.
"""

import ctypes
import ctypes.util
import json
import os

MOSS_OK = 0
MOSS_ERR_INVALID_HANDLE = -1
MOSS_ERR_ALREADY_STARTED = -2
MOSS_ERR_NOT_STARTED = -3
MOSS_ERR_INVALID_CHANNEL = -4
MOSS_ERR_MESSAGE_TOO_LARGE = -5
MOSS_ERR_NO_PEERS = -6
MOSS_ERR_TRACKER_FAIL = -7
MOSS_ERR_CONFIG_INVALID = -8
MOSS_ERR_OUT_OF_MEMORY = -9
MOSS_ERR_CONNECT_FAILED = -10
MOSS_ERR_NOT_AVAILABLE = -11
MOSS_ERR_INTERNAL = -12
MOSS_ERR_LISTEN_FAILED = -13
MOSS_ERR_INVALID_ARGUMENT = -14

MessageCallback = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint32
)
EventCallback = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p)


def _load():
    path = os.environ.get("MOSS_LIB") or ctypes.util.find_library("moss") or "libmoss.so"
    lib = ctypes.CDLL(path)
    h = ctypes.c_int64
    sig = {
        "Moss_Version": (ctypes.c_char_p, []),
        "Moss_LastError": (ctypes.c_char_p, []),
        "Moss_Init": (h, [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p]),
        "Moss_Start": (ctypes.c_int32, [h]),
        "Moss_Stop": (ctypes.c_int32, [h]),
        "Moss_Subscribe": (ctypes.c_int32, [h, ctypes.c_char_p]),
        "Moss_Unsubscribe": (ctypes.c_int32, [h, ctypes.c_char_p]),
        "Moss_Publish": (ctypes.c_int32, [h, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32]),
        "Moss_Connect": (ctypes.c_int32, [h, ctypes.c_char_p]),
        "Moss_SetCallback": (ctypes.c_int32, [h, MessageCallback]),
        "Moss_SetEventCallback": (ctypes.c_int32, [h, EventCallback]),
        # Moss-owned strings: returned as raw pointers so they can be freed.
        "Moss_GetMeshInfo": (ctypes.c_void_p, [h]),
        "Moss_GetNetworkStats": (ctypes.c_void_p, [h]),
        "Moss_GetPublicKey": (ctypes.c_void_p, [h]),
        "Moss_GetNATType": (ctypes.c_void_p, [h]),
        "Moss_Free": (None, [ctypes.c_void_p]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


lib = _load()


class MossError(Exception):
    """A negative Moss result code with Moss_LastError's text."""

    def __init__(self, op, code):
        self.code = code
        text = (lib.Moss_LastError() or b"").decode("utf-8", "replace")
        super().__init__(f"{op} failed with {code}: {text}")


def version():
    return lib.Moss_Version().decode()


def _take(ptr):
    """Copies a Moss-owned string and releases it with Moss_Free."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        lib.Moss_Free(ptr)


class Node:
    """One Moss node handle."""

    def __init__(self, mesh_id, psk=None, config=None):
        if psk is not None and len(psk) != 32:
            raise ValueError("psk must be 32 bytes")
        cfg = None if config is None else json.dumps(config).encode()
        psk_buf = None if psk is None else ctypes.c_char_p(bytes(psk))
        h = lib.Moss_Init(mesh_id.encode(), psk_buf, cfg)
        if h <= 0:
            raise MossError("Moss_Init", h)
        self.handle = h
        self._callbacks = []

    def _check(self, op, rc):
        if rc != MOSS_OK:
            raise MossError(op, rc)

    def start(self):
        self._check("Moss_Start", lib.Moss_Start(self.handle))

    def stop(self):
        """Stops the node; no callback runs after this returns."""
        rc = lib.Moss_Stop(self.handle)
        self._callbacks.clear()
        return rc

    def subscribe(self, channel):
        self._check("Moss_Subscribe", lib.Moss_Subscribe(self.handle, channel.encode()))

    def unsubscribe(self, channel):
        self._check("Moss_Unsubscribe", lib.Moss_Unsubscribe(self.handle, channel.encode()))

    def publish(self, channel, data):
        """Returns the result code (MOSS_ERR_NO_PEERS is not an exception)."""
        data = bytes(data)
        return lib.Moss_Publish(self.handle, channel.encode(), data, len(data))

    def connect(self, host_port):
        self._check("Moss_Connect", lib.Moss_Connect(self.handle, host_port.encode()))

    def on_message(self, fn):
        """fn(channel: str, sender_id: bytes, data: bytes)."""

        def tramp(channel, sender, data, length):
            fn(channel.decode(), ctypes.string_at(sender, 32), ctypes.string_at(data, length))

        cb = MessageCallback(tramp)
        self._callbacks.append(cb)
        self._check("Moss_SetCallback", lib.Moss_SetCallback(self.handle, cb))

    def on_event(self, fn):
        """fn(event_type: int, detail: dict)."""

        def tramp(event_type, detail):
            fn(event_type, json.loads(detail.decode()))

        cb = EventCallback(tramp)
        self._callbacks.append(cb)
        self._check("Moss_SetEventCallback", lib.Moss_SetEventCallback(self.handle, cb))

    def mesh_info(self):
        info = _take(lib.Moss_GetMeshInfo(self.handle))
        if info is None:
            raise MossError("Moss_GetMeshInfo", MOSS_ERR_NOT_STARTED)
        return json.loads(info)

    def network_stats(self):
        return json.loads(_take(lib.Moss_GetNetworkStats(self.handle)) or "null")

    def public_key(self):
        return _take(lib.Moss_GetPublicKey(self.handle))

    def nat_type(self):
        return _take(lib.Moss_GetNATType(self.handle))
