//! The global host key store: `Moss_SetKeyStore` callbacks and the identity
//! choice `Moss_Init` makes with them.

use crate::callbacks::{MossKeyStoreLoadCallback, MossKeyStoreSaveCallback};
use moss_engine::Identity;
use std::sync::RwLock;

/// Largest stored identity: 64 bytes seed||public key (a bare 32-byte seed
/// is accepted too).
pub(crate) const IDENTITY_MAX: usize = 64;

#[derive(Clone, Copy)]
struct Store {
    load: MossKeyStoreLoadCallback,
    save: MossKeyStoreSaveCallback,
}

static STORE: RwLock<Store> = RwLock::new(Store {
    load: None,
    save: None,
});

/// Installs (or, with NULLs, removes) the key store callbacks.
pub fn set(load: MossKeyStoreLoadCallback, save: MossKeyStoreSaveCallback) {
    let mut s = STORE.write().unwrap_or_else(|p| p.into_inner());
    *s = Store { load, save };
}

/// Where the identity of a new handle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the host key store.
    Loaded,
    /// Generated now (and saved if a save callback is set).
    Generated,
}

/// Picks the identity for a new handle: a valid stored one, else a fresh
/// one that is handed to the save callback. Callbacks run on the calling
/// thread, with no lock held.
pub fn resolve() -> Result<(Identity, Origin), String> {
    let store = *STORE.read().unwrap_or_else(|p| p.into_inner());
    if let Some(id) = store.load.and_then(load_with) {
        return Ok((id, Origin::Loaded));
    }
    let mut seed = [0u8; 32];
    moss_random(&mut seed)?;
    let id = Identity::from_seed(seed);
    wipe(&mut seed);
    if let Some(save) = store.save {
        let mut bytes = id.to_bytes();
        // SAFETY: `bytes` is a live 64-byte buffer for the whole call; the
        // host must not keep the pointer (documented in the header).
        unsafe { save(bytes.as_ptr(), bytes.len() as u32) };
        wipe(&mut bytes);
    }
    Ok((id, Origin::Generated))
}

/// Runs the two-step load protocol: probe with `(NULL, 0)` for the stored
/// length, then read into a buffer of that capacity. Anything out of range
/// or not a valid identity counts as "nothing stored".
fn load_with(load: unsafe extern "C" fn(*mut u8, u32) -> u32) -> Option<Identity> {
    // SAFETY: the probe passes NULL with capacity 0, as documented; the host
    // must not write through it.
    let size = unsafe { load(std::ptr::null_mut(), 0) } as usize;
    if size == 0 || size > IDENTITY_MAX {
        return None;
    }
    let mut buf = [0u8; IDENTITY_MAX];
    // SAFETY: `buf` has room for `size` (<= 64) bytes and lives for the call.
    let read = unsafe { load(buf.as_mut_ptr(), size as u32) } as usize;
    let id = if read == 0 || read > size {
        None
    } else {
        Identity::from_bytes(&buf[..read]).ok()
    };
    wipe(&mut buf);
    id
}

fn moss_random(out: &mut [u8; 32]) -> Result<(), String> {
    getrandom::getrandom(out).map_err(|e| format!("no OS randomness: {e}"))
}

/// Overwrites key material so it does not linger on the stack.
fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, aligned `&mut u8`; the volatile write keeps
        // the compiler from dropping the wipe.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}
