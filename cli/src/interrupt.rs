//! Ctrl-C (SIGINT) and SIGTERM as a flag, so that `moss sub` stops its
//! node cleanly: peers are told at once, the story logs the shutdown.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT and SIGTERM to [`interrupted`] instead of ending the
/// process. Only for commands that check the flag.
pub fn catch() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the action only stores to an atomic, which is
        // async-signal-safe.
        let r = unsafe {
            signal_hook_registry::register(sig, || INTERRUPTED.store(true, Ordering::SeqCst))
        };
        if let Err(e) = r {
            tracing::warn!(signal = sig, error = %e, "cannot catch the signal");
        }
    }
}

/// True once SIGINT or SIGTERM arrived after [`catch`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
