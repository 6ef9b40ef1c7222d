//! Proves the C ABI from Rust without the Rust crate: loads `libmoss.so`
//! with `dlopen`, resolves every `Moss_*` symbol with `dlsym` into
//! `extern "C"` function pointer types written from `moss.h`, and runs two
//! nodes over loopback.
//!
//! Run: `cargo build -p moss-ffi && cargo run -p moss-ffi --example rust_abi
//! -- target/debug/libmoss.so` (or set `MOSS_LIB`).

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Handle = i64;
type MessageCb = unsafe extern "C" fn(*const c_char, *const u8, *const u8, u32);
type EventCb = unsafe extern "C" fn(i32, *const c_char);

/// The ABI as declared in `moss.h`.
struct Moss {
    version: unsafe extern "C" fn() -> *const c_char,
    last_error: unsafe extern "C" fn() -> *const c_char,
    init: unsafe extern "C" fn(*const c_char, *const u8, *const c_char) -> Handle,
    start: unsafe extern "C" fn(Handle) -> i32,
    stop: unsafe extern "C" fn(Handle) -> i32,
    subscribe: unsafe extern "C" fn(Handle, *const c_char) -> i32,
    unsubscribe: unsafe extern "C" fn(Handle, *const c_char) -> i32,
    publish: unsafe extern "C" fn(Handle, *const c_char, *const u8, u32) -> i32,
    connect: unsafe extern "C" fn(Handle, *const c_char) -> i32,
    set_callback: unsafe extern "C" fn(Handle, Option<MessageCb>) -> i32,
    set_event_callback: unsafe extern "C" fn(Handle, Option<EventCb>) -> i32,
    set_scoring_callback:
        unsafe extern "C" fn(Handle, Option<unsafe extern "C" fn(*const u8, f64) -> f64>) -> i32,
    set_key_store: unsafe extern "C" fn(
        Option<unsafe extern "C" fn(*mut u8, u32) -> u32>,
        Option<unsafe extern "C" fn(*const u8, u32)>,
    ) -> i32,
    get_mesh_info: unsafe extern "C" fn(Handle) -> *mut c_char,
    get_network_stats: unsafe extern "C" fn(Handle) -> *mut c_char,
    get_public_key: unsafe extern "C" fn(Handle) -> *mut c_char,
    get_nat_type: unsafe extern "C" fn(Handle) -> *mut c_char,
    free: unsafe extern "C" fn(*mut c_void),
}

/// Resolves `name` in the library `lib` as a function pointer of type `T`.
///
/// # Safety
/// `lib` is a live `dlopen` handle and `T` is the symbol's true signature.
unsafe fn sym<T: Copy>(lib: *mut c_void, name: &str) -> Result<T, String> {
    let c = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: `lib` is a live handle and `c` a C string.
    let p = unsafe { libc::dlsym(lib, c.as_ptr()) };
    if p.is_null() {
        return Err(format!("symbol {name} not found"));
    }
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: T is a function pointer type of the symbol's signature.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

impl Moss {
    fn open(path: &str) -> Result<Self, String> {
        let c = CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: a C string path; RTLD_NOW resolves everything up front.
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            // SAFETY: dlerror returns a C string after a failed dlopen.
            let e = unsafe { CStr::from_ptr(libc::dlerror()) };
            return Err(format!("dlopen {path}: {}", e.to_string_lossy()));
        }
        // SAFETY: each type below is the signature moss.h declares.
        unsafe {
            Ok(Self {
                version: sym(lib, "Moss_Version")?,
                last_error: sym(lib, "Moss_LastError")?,
                init: sym(lib, "Moss_Init")?,
                start: sym(lib, "Moss_Start")?,
                stop: sym(lib, "Moss_Stop")?,
                subscribe: sym(lib, "Moss_Subscribe")?,
                unsubscribe: sym(lib, "Moss_Unsubscribe")?,
                publish: sym(lib, "Moss_Publish")?,
                connect: sym(lib, "Moss_Connect")?,
                set_callback: sym(lib, "Moss_SetCallback")?,
                set_event_callback: sym(lib, "Moss_SetEventCallback")?,
                set_scoring_callback: sym(lib, "Moss_SetScoringCallback")?,
                set_key_store: sym(lib, "Moss_SetKeyStore")?,
                get_mesh_info: sym(lib, "Moss_GetMeshInfo")?,
                get_network_stats: sym(lib, "Moss_GetNetworkStats")?,
                get_public_key: sym(lib, "Moss_GetPublicKey")?,
                get_nat_type: sym(lib, "Moss_GetNATType")?,
                free: sym(lib, "Moss_Free")?,
            })
        }
    }

    fn error(&self) -> String {
        // SAFETY: Moss_LastError returns a NUL-terminated string.
        unsafe { CStr::from_ptr((self.last_error)()) }
            .to_string_lossy()
            .into_owned()
    }

    /// Copies and frees a Moss-owned string.
    fn take(&self, p: *mut c_char) -> Result<String, String> {
        if p.is_null() {
            return Err(self.error());
        }
        // SAFETY: a string returned by a Moss getter, freed once.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        // SAFETY: as above.
        unsafe { (self.free)(p.cast()) };
        Ok(s)
    }
}

static GOT: AtomicUsize = AtomicUsize::new(0);
static JOINED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn on_message(
    channel: *const c_char,
    _from: *const u8,
    data: *const u8,
    len: u32,
) {
    // SAFETY: valid for the call, as moss.h documents.
    let (c, d) = unsafe {
        (
            CStr::from_ptr(channel),
            std::slice::from_raw_parts(data, len as usize),
        )
    };
    if c.to_bytes() == b"abi" && d == b"over the C ABI" {
        GOT.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe extern "C" fn on_event(id: i32, _detail: *const c_char) {
    if id == 1 {
        JOINED.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe extern "C" fn score(_peer: *const u8, base: f64) -> f64 {
    base
}

/// Runs the two-node check against the library at `path`.
pub fn run(path: &str) -> Result<(), String> {
    let m = Moss::open(path)?;
    let cfg = c"{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false}";
    // SAFETY: every call passes C strings, NULL or live buffers, per moss.h.
    unsafe {
        let v = CStr::from_ptr((m.version)()).to_string_lossy().into_owned();
        println!("{v}");
        if (m.set_key_store)(None, None) != 0 {
            return Err("Moss_SetKeyStore".into());
        }
        let a = (m.init)(c"rust-abi".as_ptr(), std::ptr::null(), cfg.as_ptr());
        let b = (m.init)(c"rust-abi".as_ptr(), std::ptr::null(), cfg.as_ptr());
        if a <= 0 || b <= 0 {
            return Err(format!("Moss_Init: {}", m.error()));
        }
        if (m.set_scoring_callback)(a, Some(score)) != 0 {
            return Err(format!("Moss_SetScoringCallback: {}", m.error()));
        }
        (m.set_callback)(b, Some(on_message));
        (m.set_event_callback)(b, Some(on_event));
        for h in [a, b] {
            if (m.subscribe)(h, c"abi".as_ptr()) != 0 || (m.start)(h) != 0 {
                return Err(format!("subscribe/start: {}", m.error()));
            }
        }
        let info = m.take((m.get_mesh_info)(a))?;
        let port: u16 = info
            .split("\"listen_port\":")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no listen_port in {info}"))?;
        let addr = CString::new(format!("127.0.0.1:{port}")).map_err(|e| e.to_string())?;
        if (m.connect)(b, addr.as_ptr()) != 0 {
            return Err(format!("Moss_Connect: {}", m.error()));
        }
        let msg = b"over the C ABI";
        let deadline = Instant::now() + Duration::from_secs(20);
        while GOT.load(Ordering::SeqCst) == 0 {
            if Instant::now() > deadline {
                return Err("message not delivered".into());
            }
            let rc = (m.publish)(a, c"abi".as_ptr(), msg.as_ptr(), msg.len() as u32);
            if rc != 0 && rc != -6 {
                return Err(format!("Moss_Publish {rc}: {}", m.error()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let key = m.take((m.get_public_key)(a))?;
        let nat = m.take((m.get_nat_type)(a))?;
        let stats = m.take((m.get_network_stats)(a))?;
        println!(
            "a = {key}, nat {nat}, stats {stats}, peer joins at b: {}",
            JOINED.load(Ordering::SeqCst)
        );
        if key.len() != 64 || nat != "unknown" || stats != "{}" {
            return Err("unexpected getter output".into());
        }
        (m.free)(std::ptr::null_mut());
        if (m.unsubscribe)(a, c"abi".as_ptr()) != 0 {
            return Err(format!("Moss_Unsubscribe: {}", m.error()));
        }
        if (m.stop)(a) != 0 || (m.stop)(b) != 0 || (m.stop)(a) != -1 {
            return Err(format!("Moss_Stop: {}", m.error()));
        }
    }
    println!("OK");
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let path = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MOSS_LIB").ok())
        .unwrap_or_else(|| "libmoss.so".into());
    if let Err(e) = run(&path) {
        eprintln!("FAILED: {e}");
        std::process::exit(1);
    }
}
