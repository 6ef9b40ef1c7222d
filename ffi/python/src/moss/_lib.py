"""Finding and loading libmoss.so, and the C ABI's signatures."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import List, Optional

LIB_NAME = "libmoss.so"

MessageCallback = ctypes.CFUNCTYPE(
    None,
    ctypes.c_char_p,
    ctypes.POINTER(ctypes.c_uint8),
    ctypes.POINTER(ctypes.c_uint8),
    ctypes.c_uint32,
)
"""`void (*)(const char *channel, const uint8_t sender[32], const uint8_t *data, uint32_t len)`."""

EventCallback = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p)
"""`void (*)(int32_t event_type, const char *detail_json)`."""

_H = ctypes.c_int64
_SIGNATURES = {
    "Moss_Version": (ctypes.c_char_p, []),
    "Moss_LastError": (ctypes.c_char_p, []),
    "Moss_Init": (_H, [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p]),
    "Moss_Start": (ctypes.c_int32, [_H]),
    "Moss_Stop": (ctypes.c_int32, [_H]),
    "Moss_Subscribe": (ctypes.c_int32, [_H, ctypes.c_char_p]),
    "Moss_Unsubscribe": (ctypes.c_int32, [_H, ctypes.c_char_p]),
    "Moss_Publish": (ctypes.c_int32, [_H, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32]),
    "Moss_Connect": (ctypes.c_int32, [_H, ctypes.c_char_p]),
    "Moss_SetCallback": (ctypes.c_int32, [_H, MessageCallback]),
    "Moss_SetEventCallback": (ctypes.c_int32, [_H, EventCallback]),
    # Moss-owned strings come back as raw pointers so they can be freed.
    "Moss_GetMeshInfo": (ctypes.c_void_p, [_H]),
    "Moss_GetNetworkStats": (ctypes.c_void_p, [_H]),
    "Moss_GetPublicKey": (ctypes.c_void_p, [_H]),
    "Moss_GetNATType": (ctypes.c_void_p, [_H]),
    "Moss_Free": (None, [ctypes.c_void_p]),
}


def candidates(start: Optional[Path] = None) -> List[Path]:
    """Where libmoss.so is looked for, in order: $MOSS_LIB; next to this
    package (a wheel with the library inside); $CARGO_TARGET_DIR/{debug,release};
    then target/{debug,release} in the current directory and each parent."""
    out: List[Path] = []
    env = os.environ.get("MOSS_LIB")
    if env:
        out.append(Path(env))
    out.append(Path(__file__).resolve().parent / LIB_NAME)
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        out += [Path(target) / p / LIB_NAME for p in ("debug", "release")]
    here = (start or Path.cwd()).resolve()
    for d in [here, *here.parents]:
        out += [d / "target" / p / LIB_NAME for p in ("debug", "release")]
    return out


def find() -> str:
    """The path of the library to load (see `candidates`); falls back to the
    loader's search path (LD_LIBRARY_PATH) by name."""
    env = os.environ.get("MOSS_LIB")
    if env:
        # An explicit override is used as given, so a wrong path fails loudly.
        return env
    for p in candidates():
        if p.is_file():
            return str(p)
    return ctypes.util.find_library("moss") or LIB_NAME


def load(path: Optional[str] = None) -> ctypes.CDLL:
    """Loads libmoss and declares every function's signature."""
    lib = ctypes.CDLL(path or find())
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib
