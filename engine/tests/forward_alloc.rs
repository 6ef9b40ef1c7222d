//! The relay data plane's I/O allocates nothing: after a warm-up,
//! `Backend::recv_forward` receiving and sending on floods of datagrams
//! makes no heap allocation on any backend (a counting global allocator
//! counts the calls made on the forwarding thread while it forwards).

use moss::backend::{open_with_socket, Backend, BackendKind, OutDatagram, RecvBatch};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::skip;

struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the forwarding thread while it forwards.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    // `try_with`: the thread-local may be gone while a thread exits.
    if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed unchanged to the system allocator; the
// counter is a side effect only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn open(kind: BackendKind) -> Box<dyn Backend> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    open_with_socket(kind, s).unwrap_or_else(|e| panic!("{}: {e}", kind.as_str()))
}

/// A sender, a relay forwarding everything to `to`, and its batch.
struct Rig {
    tx: Box<dyn Backend>,
    relay: Box<dyn Backend>,
    batch: RecvBatch,
    via: SocketAddr,
    to: SocketAddr,
}

impl Rig {
    /// Sends `rounds` × 64 datagrams of `size` bytes to the relay,
    /// forwarding them as they come (counting allocations on this thread
    /// during `recv_forward` when `counted`); returns how many the relay
    /// handed to its callback.
    fn blast(&mut self, size: usize, rounds: usize, counted: bool) -> usize {
        let payload = vec![0x33u8; size];
        let out: Vec<OutDatagram<'_>> = (0..64)
            .map(|_| OutDatagram {
                to: self.via,
                bytes: &payload,
            })
            .collect();
        let to = self.to;
        let mut seen = 0;
        for _ in 0..rounds {
            let _ = self.tx.send_batch(&out);
            let end = Instant::now() + Duration::from_millis(50);
            loop {
                COUNTING.with(|c| c.set(counted));
                let r = self
                    .relay
                    .recv_forward(&mut self.batch, &mut |_, _| Some(to));
                COUNTING.with(|c| c.set(false));
                let n = r.map(|r| r.datagrams).unwrap_or(0);
                seen += n;
                if n == 0 {
                    if Instant::now() > end {
                        break;
                    }
                    let _ = self.relay.wait(Some(Duration::from_millis(5)));
                }
            }
        }
        seen
    }
}

#[test]
fn recv_forward_allocates_nothing() {
    let mut kinds = vec![BackendKind::Portable];
    if cfg!(target_os = "linux") {
        kinds.push(BackendKind::Mmsg);
        match moss::backend::open(BackendKind::Uring, "127.0.0.1:0".parse().expect("addr")) {
            Ok(_) => kinds.push(BackendKind::Uring),
            Err(e) => skip(&format!("uring unavailable here: {e}")),
        }
    }
    for kind in kinds {
        let name = kind.as_str();
        let (tx, relay, rx) = (open(kind), open(kind), open(kind));
        let mut rig = Rig {
            via: relay.local_addr().expect("addr"),
            to: rx.local_addr().expect("addr"),
            tx,
            relay,
            batch: RecvBatch::new(64),
        };
        for size in [64, 1200] {
            // Warm-up: scratch vectors reach their steady size.
            rig.blast(size, 4, false);
            let before = CALLS.load(Ordering::Relaxed);
            let seen = rig.blast(size, 20, true);
            let calls = CALLS.load(Ordering::Relaxed) - before;
            assert!(seen > 0, "{name} {size} B: nothing forwarded");
            assert_eq!(
                calls, 0,
                "{name} {size} B: {calls} allocations forwarding {seen} datagrams"
            );
        }
        drop(rx);
    }
}
