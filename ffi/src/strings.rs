//! C strings in and out: borrowing host strings, handing out Moss-owned
//! strings, and the thread-local last-error message.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

/// Why a host string could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrError {
    /// The pointer was NULL.
    Null,
    /// The bytes are not UTF-8.
    NotUtf8,
}

impl StrError {
    /// A short phrase for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::NotUtf8 => "not UTF-8",
        }
    }
}

/// Borrows a NUL-terminated host string as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for the returned lifetime.
pub unsafe fn borrow<'a>(p: *const c_char) -> Result<&'a str, StrError> {
    if p.is_null() {
        return Err(StrError::Null);
    }
    // SAFETY: non-NULL, and the caller guarantees NUL termination and
    // validity for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| StrError::NotUtf8)
}

/// Hands `s` to the host as a Moss-owned C string (released by `Moss_Free`).
/// Returns NULL if `s` holds a NUL byte (never the case for our JSON).
pub fn give(s: String) -> *mut c_char {
    match CString::new(s) {
        Ok(c) => c.into_raw(),
        Err(_) => {
            set_last_error("internal error: string with a NUL byte");
            std::ptr::null_mut()
        }
    }
}

/// Releases a string made by [`give`].
///
/// # Safety
/// `p` is NULL or a pointer returned by [`give`] and not released before.
pub unsafe fn release(p: *mut c_char) {
    if !p.is_null() {
        // SAFETY: the caller guarantees `p` came from `CString::into_raw` in
        // `give` and is released once.
        drop(unsafe { CString::from_raw(p) });
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the message `Moss_LastError` returns on this thread.
pub fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The last error of this thread; valid until the next failing call on it.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// A copy of this thread's last error (for tests).
pub fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrow_rejects_null_and_bad_utf8() {
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { borrow(std::ptr::null()) }, Err(StrError::Null));
        let bad = [0xffu8, 0xfe, 0];
        // SAFETY: NUL-terminated local buffer.
        assert_eq!(
            unsafe { borrow(bad.as_ptr().cast()) },
            Err(StrError::NotUtf8)
        );
        let good = c"chat";
        // SAFETY: a C string literal.
        assert_eq!(unsafe { borrow(good.as_ptr()) }, Ok("chat"));
    }

    #[test]
    fn give_and_release_round_trip() {
        let p = give("{}".into());
        assert!(!p.is_null());
        // SAFETY: just made by give.
        assert_eq!(unsafe { CStr::from_ptr(p) }.to_str(), Ok("{}"));
        // SAFETY: made by give, released once.
        unsafe { release(p) };
        assert!(give("a\0b".into()).is_null());
    }

    #[test]
    fn last_error_is_per_thread() {
        set_last_error("here");
        std::thread::spawn(|| {
            assert_eq!(last_error(), "");
            set_last_error("there");
        })
        .join()
        .unwrap();
        assert_eq!(last_error(), "here");
    }
}
