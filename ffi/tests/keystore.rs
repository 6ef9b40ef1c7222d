//! `Moss_SetKeyStore`: a stored identity is reused, a missing or invalid one
//! is replaced by a new identity that is saved. The key store is global, so
//! this file is its own test binary and runs its cases in one test.

use moss_capi::*;
use std::ffi::{c_char, CStr};
use std::ptr::null;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What the host "disk" holds.
static DISK: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static LOADS: AtomicUsize = AtomicUsize::new(0);
static SAVES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn load(buf: *mut u8, cap: u32) -> u32 {
    LOADS.fetch_add(1, Ordering::SeqCst);
    let disk = DISK.lock().unwrap();
    if buf.is_null() {
        return disk.len() as u32;
    }
    let n = disk.len().min(cap as usize);
    // SAFETY: Moss passes a buffer of `cap` writable bytes.
    unsafe { std::ptr::copy_nonoverlapping(disk.as_ptr(), buf, n) };
    n as u32
}

unsafe extern "C" fn save(data: *const u8, len: u32) {
    SAVES.fetch_add(1, Ordering::SeqCst);
    // SAFETY: Moss passes `len` readable bytes.
    let d = unsafe { std::slice::from_raw_parts(data, len as usize) };
    *DISK.lock().unwrap() = d.to_vec();
}

fn public_key_of_new_handle() -> String {
    // SAFETY: valid C strings.
    let h = unsafe { Moss_Init(c"keys".as_ptr(), null(), c"{\"trackers\":[]}".as_ptr()) };
    assert!(h > 0);
    let p: *mut c_char = Moss_GetPublicKey(h);
    assert!(!p.is_null());
    // SAFETY: a Moss-owned string, freed once.
    let key = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: as above.
    unsafe { Moss_Free(p.cast()) };
    assert_eq!(Moss_Stop(h), MOSS_ERR_NOT_STARTED);
    key
}

#[test]
fn identities_are_loaded_generated_and_saved() {
    // Without a key store every handle gets a fresh identity.
    assert_ne!(public_key_of_new_handle(), public_key_of_new_handle());

    assert_eq!(Moss_SetKeyStore(Some(load), Some(save)), MOSS_OK);
    // Empty store: generate and save 64 bytes (seed || public key).
    let first = public_key_of_new_handle();
    assert_eq!(SAVES.load(Ordering::SeqCst), 1);
    let stored = DISK.lock().unwrap().clone();
    assert_eq!(stored.len(), 64);
    let hex: String = stored[32..].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, first, "the saved public half is the node's key");

    // Stored and valid: reused, nothing saved.
    assert_eq!(public_key_of_new_handle(), first);
    assert_eq!(public_key_of_new_handle(), first);
    assert_eq!(SAVES.load(Ordering::SeqCst), 1);
    // The 32-byte seed form is accepted too.
    DISK.lock().unwrap().truncate(32);
    assert_eq!(public_key_of_new_handle(), first);

    // Invalid content: a public half that does not match, a wrong length,
    // or more than 64 bytes. Each time a new identity is generated and saved.
    for bad in [
        [stored[..32].to_vec(), vec![0u8; 32]].concat(),
        vec![1u8; 40],
        vec![2u8; 65],
        vec![3u8; 4096],
    ] {
        *DISK.lock().unwrap() = bad;
        let saves = SAVES.load(Ordering::SeqCst);
        let k = public_key_of_new_handle();
        assert_ne!(k, first);
        assert_eq!(SAVES.load(Ordering::SeqCst), saves + 1);
        assert_eq!(DISK.lock().unwrap().len(), 64);
    }
    assert!(LOADS.load(Ordering::SeqCst) > 0);

    // Cleared: back to fresh identities, the callbacks are not called.
    assert_eq!(Moss_SetKeyStore(None, None), MOSS_OK);
    let loads = LOADS.load(Ordering::SeqCst);
    assert_ne!(public_key_of_new_handle(), public_key_of_new_handle());
    assert_eq!(LOADS.load(Ordering::SeqCst), loads);
}
