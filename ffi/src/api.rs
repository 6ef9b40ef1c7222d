//! The exported `Moss_*` functions. Each one catches panics, maps every
//! failure to a documented code and records a message for `Moss_LastError`.
#![allow(non_snake_case)]

use crate::callbacks::{
    MossEventCallback, MossKeyStoreLoadCallback, MossKeyStoreSaveCallback, MossMessageCallback,
    MossScoringCallback,
};
use crate::codes::{FfiError, MOSS_OK};
use crate::handles::{Handle, Stopped};
use crate::keystore;
use crate::strings::{self, StrError};
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// A node handle: positive on success; `Moss_Init` returns a negative
/// `MOSS_ERR_*` code instead on failure.
pub type MossHandle = i64;

const VERSION: &CStr = match CStr::from_bytes_with_nul(
    concat!("moss ", env!("CARGO_PKG_VERSION"), " (moss-ffi, Rust)\0").as_bytes(),
) {
    Ok(v) => v,
    Err(_) => panic!("version string has an inner NUL"),
};

/// Runs `f`, turning an error or a panic into its code and last-error text.
fn run_code(f: impl FnOnce() -> Result<i32, FfiError>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => fail(e),
        Err(_) => fail(FfiError::Internal("panic inside Moss (a bug)".into())),
    }
}

/// Like [`run_code`] for functions returning a Moss-owned string (NULL on
/// failure).
fn run_string(f: impl FnOnce() -> Result<String, FfiError>) -> *mut c_char {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(s)) => strings::give(s),
        Ok(Err(e)) => {
            fail(e);
            std::ptr::null_mut()
        }
        Err(_) => {
            fail(FfiError::Internal("panic inside Moss (a bug)".into()));
            std::ptr::null_mut()
        }
    }
}

fn fail(e: FfiError) -> i32 {
    strings::set_last_error(&e.message());
    e.code()
}

/// Reads and checks a channel argument.
///
/// # Safety
/// As [`strings::borrow`].
unsafe fn channel_arg<'a>(p: *const c_char) -> Result<&'a str, FfiError> {
    // SAFETY: forwarded contract.
    let c =
        unsafe { strings::borrow(p) }.map_err(|e| FfiError::InvalidChannel(e.describe().into()))?;
    if c.is_empty() {
        return Err(FfiError::InvalidChannel("empty".into()));
    }
    if c.len() > 255 {
        return Err(FfiError::InvalidChannel(format!(
            "{} bytes, at most 255",
            c.len()
        )));
    }
    Ok(c)
}

/// The library name and version, e.g. `moss 0.1.0 (moss-ffi, Rust)`. The
/// string is static: do not free it.
#[no_mangle]
pub extern "C" fn Moss_Version() -> *const c_char {
    VERSION.as_ptr()
}

/// Creates a node handle. Nothing is bound or sent until `Moss_Start`.
///
/// `mesh_id`: required UTF-8 mesh name. `psk`: NULL for an open mesh, or 32
/// bytes. `config_json`: NULL or "" for defaults, else the JSON config
/// (omitted `trackers` = built-in set, `[]` = off; partial nested objects
/// fall back field by field). The identity comes from the key store set by
/// `Moss_SetKeyStore` if it holds a valid one, else a new one is generated
/// (and saved). Returns a positive handle, or `MOSS_ERR_CONFIG_INVALID`
/// (`Moss_LastError` names the field) or `MOSS_ERR_INTERNAL`.
///
/// # Safety
/// `mesh_id` and `config_json` are NULL or NUL-terminated strings; `psk` is
/// NULL or points to 32 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn Moss_Init(
    mesh_id: *const c_char,
    psk: *const u8,
    config_json: *const c_char,
) -> MossHandle {
    match catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded contract.
        init(unsafe { strings::borrow(mesh_id) }, psk, unsafe {
            strings::borrow(config_json)
        })
    })) {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => i64::from(fail(e)),
        Err(_) => i64::from(fail(FfiError::Internal("panic inside Moss (a bug)".into()))),
    }
}

fn init(
    mesh_id: Result<&str, StrError>,
    psk: *const u8,
    config_json: Result<&str, StrError>,
) -> Result<MossHandle, FfiError> {
    let mesh_id = mesh_id.map_err(|e| FfiError::Config(format!("mesh_id: {}", e.describe())))?;
    if mesh_id.is_empty() {
        return Err(FfiError::Config("mesh_id: empty".into()));
    }
    let text = match config_json {
        Ok(t) => t,
        Err(StrError::Null) => "",
        Err(StrError::NotUtf8) => {
            return Err(FfiError::Config("config_json: not UTF-8".into()));
        }
    };
    let config = moss_engine::config::parse(text).map_err(|e| FfiError::Config(e.to_string()))?;
    let psk = if psk.is_null() {
        None
    } else {
        // SAFETY: non-NULL, and the caller guarantees 32 readable bytes;
        // `[u8; 32]` has alignment 1.
        Some(unsafe { std::ptr::read(psk.cast::<[u8; 32]>()) })
    };
    let (identity, _origin) = keystore::resolve().map_err(FfiError::Internal)?;
    Ok(Handle::register(mesh_id.to_string(), psk, config, identity))
}

/// Binds `0.0.0.0:listen_port`, starts the engine and the dispatch thread,
/// and joins the channels subscribed so far. Returns `MOSS_OK`,
/// `MOSS_ERR_INVALID_HANDLE`, `MOSS_ERR_ALREADY_STARTED`,
/// `MOSS_ERR_LISTEN_FAILED`, `MOSS_ERR_CONFIG_INVALID` or
/// `MOSS_ERR_INTERNAL`.
#[no_mangle]
pub extern "C" fn Moss_Start(handle: MossHandle) -> i32 {
    run_code(|| {
        Handle::get(handle)?.start()?;
        Ok(MOSS_OK)
    })
}

/// Stops the node (peers are told, the socket closes) and releases the
/// handle: every later call with it returns `MOSS_ERR_INVALID_HANDLE`. No
/// callback of this handle starts after `Moss_Stop` returns; called from
/// inside one of them, it returns at once and the dispatch thread ends when
/// that callback returns. Returns `MOSS_OK`, `MOSS_ERR_INVALID_HANDLE`
/// (unknown or already stopped), or `MOSS_ERR_NOT_STARTED` (the handle was
/// never started; it is released all the same). It first waits for calls of
/// other threads still running on this handle (a `Moss_Connect` at most
/// `security.handshake_timeout_sec`, a getter at most 5 s), so that when it
/// returns the socket is closed and the engine thread has ended.
#[no_mangle]
pub extern "C" fn Moss_Stop(handle: MossHandle) -> i32 {
    run_code(|| match Handle::stop(handle)? {
        Stopped::WasRunning => Ok(MOSS_OK),
        Stopped::NeverStarted => Err(FfiError::NotStarted),
    })
}

/// Subscribes to `channel` (1 to 255 bytes of UTF-8). Before `Moss_Start`
/// the channel is remembered and joined at start. Messages arrive through
/// the `Moss_SetCallback` callback. Returns `MOSS_OK`,
/// `MOSS_ERR_INVALID_HANDLE`, `MOSS_ERR_INVALID_CHANNEL` or
/// `MOSS_ERR_OUT_OF_MEMORY` (engine queue full).
///
/// # Safety
/// `channel` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn Moss_Subscribe(handle: MossHandle, channel: *const c_char) -> i32 {
    run_code(|| {
        let h = Handle::get(handle)?;
        // SAFETY: forwarded contract.
        let c = unsafe { channel_arg(channel) }?;
        h.subscribe(c)?;
        Ok(MOSS_OK)
    })
}

/// Leaves `channel`. Returns `MOSS_OK`, `MOSS_ERR_INVALID_HANDLE`,
/// `MOSS_ERR_INVALID_CHANNEL` or `MOSS_ERR_OUT_OF_MEMORY`.
///
/// # Safety
/// `channel` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn Moss_Unsubscribe(handle: MossHandle, channel: *const c_char) -> i32 {
    run_code(|| {
        let h = Handle::get(handle)?;
        // SAFETY: forwarded contract.
        let c = unsafe { channel_arg(channel) }?;
        h.unsubscribe(c)?;
        Ok(MOSS_OK)
    })
}

/// Publishes `len` bytes on `channel`. The bytes are copied before the call
/// returns. `len` 0 is a valid empty message (`data` may then be NULL).
/// Returns `MOSS_OK` once the engine has the message,
/// `MOSS_ERR_INVALID_HANDLE`, `MOSS_ERR_NOT_STARTED`,
/// `MOSS_ERR_INVALID_CHANNEL`, `MOSS_ERR_MESSAGE_TOO_LARGE` (over
/// `security.max_message_size_bytes`), `MOSS_ERR_INVALID_ARGUMENT` (`data`
/// NULL with `len > 0`), `MOSS_ERR_NO_PEERS` or `MOSS_ERR_OUT_OF_MEMORY`
/// (engine queue full: retry later).
///
/// # Safety
/// `channel` is NULL or a NUL-terminated string; `data` is NULL or points to
/// `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn Moss_Publish(
    handle: MossHandle,
    channel: *const c_char,
    data: *const u8,
    len: u32,
) -> i32 {
    run_code(|| {
        let h = Handle::get(handle)?;
        // SAFETY: forwarded contract.
        let c = unsafe { channel_arg(channel) }?;
        let max = h.config.security.max_message_size_bytes;
        if len > max {
            return Err(FfiError::TooLarge {
                size: u64::from(len),
                max: u64::from(max),
            });
        }
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return Err(FfiError::InvalidArgument("data is NULL but len > 0"));
        } else {
            // SAFETY: non-NULL, `len` <= the configured maximum (at most
            // 1 MiB), and the caller guarantees `len` readable bytes that
            // stay unchanged during the call.
            unsafe { std::slice::from_raw_parts(data, len as usize) }
        };
        h.with_node(|n| n.publish(c, bytes).map_err(FfiError::from_node))?;
        Ok(MOSS_OK)
    })
}

/// Dials `host_port` (e.g. `127.0.0.1:41001`) and waits until the encrypted
/// session is up, at most `security.handshake_timeout_sec` (5 s by
/// default). Returns `MOSS_OK`, `MOSS_ERR_INVALID_HANDLE`,
/// `MOSS_ERR_NOT_STARTED` or `MOSS_ERR_CONNECT_FAILED`.
///
/// # Safety
/// `host_port` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn Moss_Connect(handle: MossHandle, host_port: *const c_char) -> i32 {
    run_code(|| {
        let h = Handle::get(handle)?;
        // SAFETY: forwarded contract.
        let addr = unsafe { strings::borrow(host_port) }
            .map_err(|e| FfiError::Connect(format!("address is {}", e.describe())))?;
        let timeout = Duration::from_secs(u64::from(h.config.security.handshake_timeout_sec));
        h.with_node(|n| {
            n.connect_wait(addr, timeout)
                .map(|_| ())
                .map_err(FfiError::from_node)
        })?;
        Ok(MOSS_OK)
    })
}

/// Sets (or with NULL clears) the message callback. It runs on the node's
/// dispatch thread, never on an engine thread and never under a Moss lock:
/// it may call `Moss_*` functions, including `Moss_Publish`. Returns
/// `MOSS_OK` or `MOSS_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn Moss_SetCallback(handle: MossHandle, cb: MossMessageCallback) -> i32 {
    run_code(|| {
        Handle::get(handle)?.callbacks.set_message(cb);
        Ok(MOSS_OK)
    })
}

/// Sets (or with NULL clears) the event callback (same thread rules as the
/// message callback). Event ids: 1 peer joined, 2 peer left, 3 supernode
/// promoted (`{}`), 4 supernode revoked (`{"reason":…}`), 5 tracker
/// announce, 6 tracker failure, 7 relayed peer migrated to a direct path
/// (`{"peer_id":…,"from":"relay:…","addr":…}`), 100 overflow
/// (`{"dropped":N}`: messages or events the engine dropped because
/// callbacks did not keep up). Returns `MOSS_OK` or
/// `MOSS_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn Moss_SetEventCallback(handle: MossHandle, cb: MossEventCallback) -> i32 {
    run_code(|| {
        Handle::get(handle)?.callbacks.set_event(cb);
        Ok(MOSS_OK)
    })
}

/// Sets (or with NULL clears) the peer scoring callback: the gossip router
/// calls `cb(peer_id /*32 bytes*/, base_score)` for every connected peer each
/// heartbeat and uses the answer as the application score (P5; a
/// non-finite answer counts as 0). It runs on the engine thread, so it must
/// return quickly and must not call Moss functions that wait on this node
/// (getters); it may be set before or after `Moss_Start`. Returns `MOSS_OK`
/// or `MOSS_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn Moss_SetScoringCallback(handle: MossHandle, cb: MossScoringCallback) -> i32 {
    run_code(|| {
        let h = Handle::get(handle)?;
        h.callbacks.set_scoring(cb);
        Ok(MOSS_OK)
    })
}

/// Sets (or with NULLs clears) the global identity store used by later
/// `Moss_Init` calls, which call it on their own thread: `load(NULL, 0)`
/// returns the stored length (0 = none), then `load(buf, cap)` copies it;
/// a valid stored identity (32-byte seed or 64-byte seed||public key) is
/// reused, otherwise a new one is generated and passed to `save` (64 bytes).
/// Returns `MOSS_OK`.
#[no_mangle]
pub extern "C" fn Moss_SetKeyStore(
    load: MossKeyStoreLoadCallback,
    save: MossKeyStoreSaveCallback,
) -> i32 {
    run_code(|| {
        keystore::set(load, save);
        Ok(MOSS_OK)
    })
}

/// The node's state as JSON: `mesh_id`, `listen_port`, `peer_count`,
/// `peers` (addresses), `channels`, `nat_type`, `public_key` (hex),
/// `supernode_ready`, `backend`. Moss-owned: release with `Moss_Free`.
/// NULL if the handle is invalid or not started (see `Moss_LastError`).
#[no_mangle]
pub extern "C" fn Moss_GetMeshInfo(handle: MossHandle) -> *mut c_char {
    run_string(|| {
        let info =
            Handle::get(handle)?.with_node(|n| n.mesh_info().map_err(FfiError::from_node))?;
        serde_json::to_string(&info).map_err(|e| FfiError::Internal(e.to_string()))
    })
}

/// The network telemetry snapshot as JSON (`epoch`,
/// `node_count_estimate`, `contributors`, `k_anon_ok`, histograms, digests,
/// ...), or `{}` when telemetry is off (`telemetry.enabled`, the default) or
/// the node is not started. Moss-owned: release with `Moss_Free`. NULL if
/// the handle is invalid.
#[no_mangle]
pub extern "C" fn Moss_GetNetworkStats(handle: MossHandle) -> *mut c_char {
    run_string(|| {
        let h = Handle::get(handle)?;
        match h.with_node(|n| n.network_stats().map_err(FfiError::from_node)) {
            Ok(snapshot) => {
                serde_json::to_string(&snapshot).map_err(|e| FfiError::Internal(e.to_string()))
            }
            Err(FfiError::NotStarted) => Ok("{}".to_string()),
            Err(e) => Err(e),
        }
    })
}

/// This node's peer id (Ed25519 public key) as 64 lower-case hex digits,
/// known from `Moss_Init` on. Moss-owned: release with `Moss_Free`. NULL if
/// the handle is invalid.
#[no_mangle]
pub extern "C" fn Moss_GetPublicKey(handle: MossHandle) -> *mut c_char {
    run_string(|| Ok(Handle::get(handle)?.public_key_hex()))
}

/// The NAT class (`unknown`, `public`, `full_cone`, `restricted_cone`,
/// `port_restricted_cone`, `symmetric_nat`, `cgnat`). NAT profiling does not
/// exist yet, so this is `unknown`. Moss-owned: release with `Moss_Free`.
/// NULL if the handle is invalid.
#[no_mangle]
pub extern "C" fn Moss_GetNATType(handle: MossHandle) -> *mut c_char {
    run_string(|| {
        let h = Handle::get(handle)?;
        // A running node reports `MeshInfo::nat_type`, which is always
        // `unknown` until NAT profiling exists; before start, `unknown` too.
        match h.with_node(|n| n.mesh_info().map_err(FfiError::from_node)) {
            Ok(info) => Ok(info.nat_type),
            Err(FfiError::NotStarted) => Ok("unknown".to_string()),
            Err(e) => Err(e),
        }
    })
}

/// Releases a string returned by `Moss_GetMeshInfo`,
/// `Moss_GetNetworkStats`, `Moss_GetPublicKey` or `Moss_GetNATType`.
/// `Moss_Free(NULL)` does nothing. Never pass other pointers, and never
/// release these with `free()`.
///
/// # Safety
/// `ptr` is NULL or a pointer from one of those functions, not yet released.
#[no_mangle]
pub unsafe extern "C" fn Moss_Free(ptr: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded contract: `ptr` came from `strings::give`.
        unsafe { strings::release(ptr.cast()) }
    }));
}

/// The message of the most recent failed `Moss_*` call on this thread
/// (names the bad config field, the OS error, ...); empty if none failed yet.
/// Static per thread: do not free; valid until the next failing call on the
/// same thread.
#[no_mangle]
pub extern "C" fn Moss_LastError() -> *const c_char {
    strings::last_error_ptr()
}
