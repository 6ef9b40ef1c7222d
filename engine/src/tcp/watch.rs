//! Readiness of the TCP carrier's sockets. The engine thread sleeps in its
//! UDP backend's `wait`; this one small thread per node (never one per
//! connection) blocks in the carrier's mio poll, notes which sockets
//! became ready and wakes the backend. Every accept, read and write runs on
//! the engine thread.

use crate::backend::Wakeup;
use mio::{Events, Poll, Token, Waker};
use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Token of the watcher's own stop waker.
pub(crate) const STOP: Token = Token(usize::MAX);

/// Ready tokens handed from the watcher to the engine thread.
#[derive(Default)]
pub(crate) struct Ready {
    tokens: Mutex<HashSet<Token>>,
}

impl Ready {
    /// Takes every token noted since the last call.
    pub fn take(&self, into: &mut Vec<Token>) {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        into.extend(t.drain());
    }
}

/// The watcher thread; stops and joins when dropped.
pub(crate) struct Watcher {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `poll`, noting ready tokens in `ready` and waking
    /// `engine` for each batch of them.
    pub fn start(mut poll: Poll, ready: Arc<Ready>, engine: Arc<dyn Wakeup>) -> io::Result<Self> {
        let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("moss-tcp-watch".into())
            .spawn(move || {
                let mut events = Events::with_capacity(256);
                while !flag.load(Ordering::SeqCst) {
                    if let Err(e) = poll.poll(&mut events, None) {
                        if e.kind() == io::ErrorKind::Interrupted {
                            continue;
                        }
                        tracing::warn!(error = %e, "tcp carrier: poll failed");
                        return;
                    }
                    let mut any = false;
                    {
                        let mut t = ready.tokens.lock().unwrap_or_else(|p| p.into_inner());
                        for ev in events.iter().filter(|e| e.token() != STOP) {
                            t.insert(ev.token());
                            any = true;
                        }
                    }
                    if any {
                        engine.wake();
                    }
                }
            })?;
        Ok(Self {
            stop,
            waker,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A failed wake leaves the thread parked until process exit.
        if self.waker.wake().is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
