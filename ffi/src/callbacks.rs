//! Host callbacks: their C types, per-handle storage, and the dispatch
//! thread that calls them.
//!
//! Each started node has one dispatch thread. It reads the engine's bounded
//! message and event channels and calls the host with no Moss lock held, so
//! a callback may call back into Moss (publish, subscribe, even stop its own
//! handle). A slow callback only lets the engine's channels fill: the engine
//! drops and counts what does not fit, and the dispatcher reports the count
//! as event 100 (overflow).

use crate::handles::Handle;
use crossbeam_channel::{select, Receiver};
use moss_engine::{Event, Message};
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

/// Message callback: `channel` (NUL-terminated), `sender_id` (32 bytes, the
/// publisher's Ed25519 key), `data`/`len` (the payload). The pointers are
/// valid only during the call: copy what you keep. Called on the node's
/// dispatch thread.
pub type MossMessageCallback = Option<
    unsafe extern "C" fn(channel: *const c_char, sender_id: *const u8, data: *const u8, len: u32),
>;

/// Event callback: `event_type` (1 peer joined, 2 peer left, 3 supernode
/// promoted, 4 supernode revoked, 5 tracker announce, 6 tracker failure,
/// 7 relayed peer migrated to a direct path, 100 host queue overflow) and
/// a JSON detail valid only during the call. Called on the node's dispatch
/// thread.
pub type MossEventCallback =
    Option<unsafe extern "C" fn(event_type: i32, detail_json: *const c_char)>;

/// Scoring callback: `peer_id` (32 bytes) and the router's base score;
/// returns the application score. Not consulted yet (see
/// `Moss_SetScoringCallback`).
pub type MossScoringCallback =
    Option<unsafe extern "C" fn(peer_id: *const u8, base_score: f64) -> f64>;

/// Key store load callback: called first as `load(NULL, 0)` and must return
/// the stored identity's length (0 = nothing stored); then as `load(buf,
/// cap)` and must copy at most `cap` bytes and return how many it copied.
pub type MossKeyStoreLoadCallback = Option<unsafe extern "C" fn(buf: *mut u8, cap: u32) -> u32>;

/// Key store save callback: persist `len` bytes (the 64-byte seed||public
/// key form); the pointer is valid only during the call.
pub type MossKeyStoreSaveCallback = Option<unsafe extern "C" fn(data: *const u8, len: u32)>;

type MessageFn = unsafe extern "C" fn(*const c_char, *const u8, *const u8, u32);
type EventFn = unsafe extern "C" fn(i32, *const c_char);
type ScoringFn = unsafe extern "C" fn(*const u8, f64) -> f64;

/// The callbacks of one handle, swappable at any time without a lock.
#[derive(Default)]
pub struct Callbacks {
    message: AtomicPtr<c_void>,
    event: AtomicPtr<c_void>,
    scoring: std::sync::Arc<AtomicPtr<c_void>>,
}

impl Callbacks {
    /// Sets or clears the message callback.
    pub fn set_message(&self, cb: MossMessageCallback) {
        let p = cb.map_or(std::ptr::null_mut(), |f| f as *mut c_void);
        self.message.store(p, Ordering::Release);
    }

    /// Sets or clears the event callback.
    pub fn set_event(&self, cb: MossEventCallback) {
        let p = cb.map_or(std::ptr::null_mut(), |f| f as *mut c_void);
        self.event.store(p, Ordering::Release);
    }

    /// Stores or clears the scoring callback; the router consults the
    /// current one every heartbeat.
    pub fn set_scoring(&self, cb: MossScoringCallback) {
        let p = cb.map_or(std::ptr::null_mut(), |f| f as *mut c_void);
        self.scoring.store(p, Ordering::Release);
    }

    /// Whether a scoring callback is stored.
    pub fn has_scoring(&self) -> bool {
        !self.scoring.load(Ordering::Acquire).is_null()
    }

    fn message(&self) -> Option<MessageFn> {
        let p = self.message.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: non-NULL values are only stored by `set_message`, from a
        // `MessageFn`; function and data pointers have the same size here.
        Some(unsafe { std::mem::transmute::<*mut c_void, MessageFn>(p) })
    }

    fn event(&self) -> Option<EventFn> {
        let p = self.event.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: non-NULL values are only stored by `set_event`, from an
        // `EventFn`.
        Some(unsafe { std::mem::transmute::<*mut c_void, EventFn>(p) })
    }

    /// A scorer for the engine: calls whatever scoring callback is stored
    /// at the time (none stored: no application score), on the engine
    /// thread, once per peer per heartbeat. A non-finite answer counts as 0.
    pub fn scorer(&self) -> impl FnMut(&moss_engine::PeerId, f64) -> f64 + Send + 'static {
        let slot = self.scoring.clone();
        move |peer, base| {
            let p = slot.load(Ordering::Acquire);
            if p.is_null() {
                return 0.0;
            }
            // SAFETY: non-NULL values are only stored by `set_scoring`, from
            // a `ScoringFn`.
            let f = unsafe { std::mem::transmute::<*mut c_void, ScoringFn>(p) };
            // SAFETY: the host promised a function of this signature; the
            // peer id points at 32 bytes that outlive the call.
            let v = unsafe { f(peer.0.as_ptr(), base) };
            if v.is_finite() {
                v
            } else {
                0.0
            }
        }
    }
}

/// How often the dispatcher checks the engine's drop counters.
const OVERFLOW_CHECK: Duration = Duration::from_millis(250);

/// The running dispatch thread of one node.
pub struct Dispatcher {
    stop: Arc<AtomicBool>,
    wake: Option<crossbeam_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Dispatcher {
    /// Starts the dispatch thread of `handle`'s node.
    pub fn spawn(
        handle: Arc<Handle>,
        messages: Receiver<Message>,
        events: Receiver<Event>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("moss-dispatch-{}", handle.id))
            .spawn(move || run(&handle, &messages, &events, &wake_rx, &flag))?;
        let thread_id = thread.thread().id();
        Ok(Self {
            stop,
            wake: Some(wake_tx),
            thread: Some(thread),
            thread_id,
        })
    }

    /// Stops the thread: no callback starts after this returns. When called
    /// from the dispatch thread itself (a callback stopping its own handle)
    /// it does not wait; the thread ends when that callback returns.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            if std::thread::current().id() != self.thread_id {
                let _ = t.join();
            }
        }
    }
}

fn run(
    handle: &Handle,
    messages: &Receiver<Message>,
    events: &Receiver<Event>,
    wake: &Receiver<()>,
    stop: &AtomicBool,
) {
    let mut reported = 0u64;
    let mut topic = TopicCache::default();
    let mut next_check = Instant::now() + OVERFLOW_CHECK;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let timeout = next_check.saturating_duration_since(Instant::now());
        select! {
            recv(messages) -> m => match m {
                Ok(m) => deliver_message(handle, stop, &mut topic, &m),
                Err(_) => return,
            },
            recv(events) -> e => match e {
                Ok(e) => deliver_event(handle, stop, &e),
                Err(_) => return,
            },
            recv(wake) -> _ => return,
            default(timeout) => {}
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + OVERFLOW_CHECK;
            if let Some(total) = handle.host_drops() {
                if total > reported {
                    let ev = Event::Overflow {
                        dropped: total - reported,
                    };
                    reported = total;
                    deliver_event(handle, stop, &ev);
                }
            }
        }
    }
}

/// A valid address for empty payloads (never read: `len` is 0).
static EMPTY: u8 = 0;

/// The C form of the last delivered topic, reused while the topic repeats.
#[derive(Default)]
struct TopicCache {
    topic: String,
    c: CString,
}

impl TopicCache {
    /// The NUL-terminated topic; `None` if it holds a NUL byte (never the
    /// case for topics the host subscribed with a C string).
    fn get(&mut self, topic: &str) -> Option<&CString> {
        if self.topic != topic || self.c.as_bytes().is_empty() {
            self.c = CString::new(topic).ok()?;
            self.topic.clear();
            self.topic.push_str(topic);
        }
        Some(&self.c)
    }
}

fn deliver_message(handle: &Handle, stop: &AtomicBool, topic: &mut TopicCache, m: &Message) {
    let Some(cb) = handle.callbacks.message() else {
        return;
    };
    if stop.load(Ordering::SeqCst) {
        return;
    }
    let Some(channel) = topic.get(&m.topic) else {
        return;
    };
    let Ok(len) = u32::try_from(m.data.len()) else {
        return;
    };
    let data = if m.data.is_empty() {
        &EMPTY as *const u8
    } else {
        m.data.as_ptr()
    };
    // SAFETY: the host registered `cb` with this signature; every pointer is
    // valid for the duration of the call (channel NUL-terminated, sender 32
    // bytes, data `len` bytes).
    unsafe { cb(channel.as_ptr(), m.from.0.as_ptr(), data, len) };
}

fn deliver_event(handle: &Handle, stop: &AtomicBool, e: &Event) {
    let Some(cb) = handle.callbacks.event() else {
        return;
    };
    if stop.load(Ordering::SeqCst) {
        return;
    }
    let Ok(detail) = CString::new(e.detail_json()) else {
        return;
    };
    // SAFETY: the host registered `cb` with this signature; `detail` is a
    // NUL-terminated string valid for the call.
    unsafe { cb(e.id(), detail.as_ptr()) };
}
