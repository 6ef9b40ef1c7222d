//! Thread-per-core shards (`engine.shards` > 1, Linux).
//!
//! Each shard is a pinned thread with its own `SO_REUSEPORT` socket on the
//! node's port, its own backend, buffer pool and [`SessionShard`] (the
//! transport ciphers of the sessions whose index names it). The sans-IO
//! node runs on the core thread (the driver, `Transport::Sharded`) with a
//! remote transport: handshakes, router, subscriptions, timers. Per datagram a shard unmasks
//! the header, opens established sessions' data in place, verifies the
//! signatures of the messages in it (once per message id across shards,
//! see [`moss_mesh::preverify`]) and hands the plaintext frames to the
//! core; the core hands back per-session plaintext
//! that the owning shard seals and sends. Handshake datagrams go to the
//! core as they are; data for a session another shard owns is handed to
//! that shard. Every queue is a bounded crossbeam channel: a full queue
//! drops and counts, the receive loop never blocks.

use crate::backend::{
    self, Backend, BackendError, BackendKind, OutDatagram, RecvBatch, SendDrops, Wakeup,
};
use crate::driver::BATCH;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use moss_crypto::MeshKeys;
use moss_mesh::shard::{Inbound, SessionShard, TransportOp};
use moss_mesh::{preverify, DropReason, Stats, VerifiedFilter};
use serde::Serialize;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod worker;
use worker::{Ctx, Worker};

/// Capacity of each shard's inbound queue (core operations and hand-offs).
const SHARD_QUEUE: usize = 16_384;
/// Slots of the shards' shared filter of verified message ids (8 B each).
const VERIFIED_SLOTS: usize = 1 << 16;
/// Capacity of the shards → core queue, in datagrams (each up to a dozen
/// messages for the router): a few rounds of the core's work, so a core
/// that cannot keep up drops at the queue, as the unsharded engine drops at
/// its socket, instead of delivering seconds late.
const CORE_QUEUE: usize = 1024;
/// Capacity of the buffer-return queues.
const FREE_QUEUE: usize = 4096;
/// Inbound queue entries a shard works per round.
const OPS_PER_ROUND: usize = 1024;
/// Receive batches a shard takes per round.
const RECV_BATCHES_PER_ROUND: usize = 8;
/// Datagrams for a not-yet-installed session a shard keeps.
const MAX_HELD: usize = 256;
/// How long such a datagram waits for its session's install.
const HOLD: Duration = Duration::from_secs(1);
/// Longest a shard sleeps with nothing to do.
const SHARD_IDLE: Duration = Duration::from_millis(100);
/// Longest the core waits to queue an install or remove on a full shard.
const CONTROL_SEND: Duration = Duration::from_secs(1);

/// Core → shard (and shard → shard) messages.
pub(crate) enum ToShard {
    /// Install, remove or seal-and-send for a session of this shard.
    Op(TransportOp),
    /// A datagram another shard received for a session of this one.
    Handoff { from: SocketAddr, bytes: Vec<u8> },
    /// Finish queued work and exit.
    Stop,
}

/// Shard → core messages.
pub(crate) enum ToCore {
    /// Opened plaintext frames of session `index`; `verified`: the shard
    /// checked every signed message in them ([`moss_mesh::preverify`]).
    Frames {
        shard: usize,
        index: u32,
        from: SocketAddr,
        bytes: Vec<u8>,
        verified: bool,
    },
    /// A datagram the shard did not open, untouched: a handshake, or a
    /// copy of data for an index the shard does not hold (the core may
    /// answer it with a hint).
    Handshake {
        shard: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
}

/// One shard's figures in [`crate::NodeStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardStat {
    /// Shard number (the top bits of the session indices it owns).
    pub shard: usize,
    /// Datagrams its socket received.
    pub datagrams_in: u64,
    /// Datagrams it sent.
    pub datagrams_out: u64,
    /// Sessions whose cipher it holds.
    pub sessions: usize,
    /// Datagrams it received for another shard's session and handed over.
    pub handoffs_out: u64,
    /// Datagrams other shards handed to it.
    pub handoffs_in: u64,
    /// Items dropped because a queue it feeds was full (to the core, to
    /// another shard) or its own inbound queue was full when the core sent.
    pub queue_drops: u64,
}

/// What a shard shares with the core and the other shards.
pub(crate) struct ShardShared {
    parked: AtomicBool,
    waker: Arc<dyn Wakeup>,
    sessions: AtomicUsize,
    handoffs_out: AtomicU64,
    handoffs_in: AtomicU64,
    queue_drops: AtomicU64,
    /// Its backend's send losses, published once per round.
    send_drops: Mutex<SendDrops>,
    /// The shard's transport counters, published once per round.
    stats: Mutex<Stats>,
}

impl ShardShared {
    /// Wakes the shard if it sleeps (or is about to).
    fn nudge(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

/// The core's side of the shard set.
pub(crate) struct Shards {
    tx: Vec<Sender<ToShard>>,
    free_tx: Vec<Sender<Vec<u8>>>,
    shared: Vec<Arc<ShardShared>>,
    threads: Vec<JoinHandle<()>>,
    /// Frames and handshake datagrams from the shards.
    pub rx: Receiver<ToCore>,
    /// Plaintext buffers the shards sealed, back to the node's pool.
    pub recycle: Receiver<Vec<u8>>,
    /// Send losses of the core's own (handshake) socket.
    pub core_drops: SendDrops,
}

/// A started shard set plus what the node builder needs to know.
pub(crate) struct Started {
    /// The core's handle.
    pub shards: Shards,
    /// A non-blocking socket of the shared port for the core's handshake
    /// datagrams.
    pub socket: UdpSocket,
    /// The shared local address.
    pub local_addr: SocketAddr,
    /// The backend the shards run.
    pub backend_name: &'static str,
}

/// Why a shard set could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A socket or backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A shard thread could not be spawned.
    #[error("cannot spawn a shard thread: {0}")]
    Thread(io::Error),
}

/// Binds `shards` sockets to `bind` with `SO_REUSEPORT`, opens a backend of
/// `kind` on each and starts the pinned shard threads, which busy-poll for
/// up to `busy_poll_us` after work before they park.
pub(crate) fn start(
    kind: BackendKind,
    bind: SocketAddr,
    shards: usize,
    keys: &MeshKeys,
    busy_poll_us: u32,
) -> Result<Started, ShardError> {
    let first = backend::bind_reuseport(bind)?;
    let local_addr = first.local_addr().map_err(|source| BackendError::Io {
        backend: "shards",
        source,
    })?;
    let core_sock = first.try_clone().map_err(|source| BackendError::Io {
        backend: "shards",
        source,
    })?;
    let mut backends = vec![backend::open_with_socket(kind, first)?];
    for _ in 1..shards {
        let s = backend::bind_reuseport(local_addr)?;
        backends.push(backend::open_with_socket(kind, s)?);
    }
    let backend_name = backends[0].name();
    let (core_tx, core_rx) = bounded(CORE_QUEUE);
    let (recycle_tx, recycle_rx) = bounded(FREE_QUEUE);
    let mut txs = Vec::with_capacity(shards);
    let mut rxs = Vec::with_capacity(shards);
    let mut free_txs = Vec::with_capacity(shards);
    let mut free_rxs = Vec::with_capacity(shards);
    let mut shared = Vec::with_capacity(shards);
    for b in &backends {
        let (tx, rx) = bounded(SHARD_QUEUE);
        txs.push(tx);
        rxs.push(rx);
        let (ftx, frx) = bounded(FREE_QUEUE);
        free_txs.push(ftx);
        free_rxs.push(frx);
        shared.push(Arc::new(ShardShared {
            parked: AtomicBool::new(false),
            waker: b.waker(),
            sessions: AtomicUsize::new(0),
            handoffs_out: AtomicU64::new(0),
            handoffs_in: AtomicU64::new(0),
            queue_drops: AtomicU64::new(0),
            send_drops: Mutex::new(SendDrops::default()),
            stats: Mutex::new(Stats::default()),
        }));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verified = Arc::new(VerifiedFilter::new(VERIFIED_SLOTS));
    let mut threads = Vec::with_capacity(shards);
    // The relay buckets' clock: the same origin on every shard.
    let epoch = Instant::now();
    for (id, ((backend, rx), free_rx)) in backends.into_iter().zip(rxs).zip(free_rxs).enumerate() {
        let worker = Worker {
            backend,
            busy_poll_us,
            ctx: Ctx {
                id,
                shard: SessionShard::new(id, keys),
                rx,
                free_rx,
                core_tx: core_tx.clone(),
                recycle_tx: recycle_tx.clone(),
                peers: txs.clone(),
                shared: shared.clone(),
                verified: verified.clone(),
                held: VecDeque::new(),
                out: Vec::with_capacity(BATCH),
                spare: (0..BATCH)
                    .map(|_| Vec::with_capacity(moss_mesh::wire::MAX_DATAGRAM))
                    .collect(),
                stopping: false,
                epoch,
                heads: [None; crate::backend::FORWARD_CHUNK],
            },
        };
        let cpu = id % cpus;
        let t = std::thread::Builder::new()
            .name(format!("moss-shard-{id}"))
            .spawn(move || {
                pin_to(cpu);
                worker.run()
            })
            .map_err(ShardError::Thread)?;
        threads.push(t);
    }
    Ok(Started {
        shards: Shards {
            tx: txs,
            free_tx: free_txs,
            shared,
            threads,
            rx: core_rx,
            recycle: recycle_rx,
            core_drops: SendDrops::default(),
        },
        socket: {
            core_sock
                .set_nonblocking(true)
                .map_err(|source| BackendError::Io {
                    backend: "shards",
                    source,
                })?;
            core_sock
        },
        local_addr,
        backend_name,
    })
}

/// Pins the calling thread to `cpu` (best effort).
fn pin_to(cpu: usize) {
    // SAFETY: `cpu_set_t` is plain data; CPU_ZERO/CPU_SET write inside it
    // and `sched_setaffinity(0, ..)` only reads it for the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        tracing::debug!(cpu, error = %io::Error::last_os_error(), "shard not pinned");
    }
}

impl Shards {
    /// Number of shards.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// Returns a buffer that held shard `shard`'s datagram to its pool.
    pub fn give_back(&self, shard: usize, buf: Vec<u8>) {
        if let Some(tx) = self.free_tx.get(shard) {
            let _ = tx.try_send(buf);
        }
    }

    /// Queues an operation on its shard. A send that finds the queue full
    /// is dropped and counted (like a lost datagram), its buffer returned;
    /// installs and removes wait (bounded) for room, since losing one would
    /// break the session. Returns the shard touched.
    pub fn route(&self, op: TransportOp, recycle: &mut dyn FnMut(Vec<u8>)) -> Option<usize> {
        if op.broadcast() {
            // Relay routes: every shard may receive an end's datagrams.
            for s in 1..self.tx.len() {
                if let Some(copy) = op.clone_broadcast() {
                    self.route_to(s, copy, recycle);
                }
            }
            return self.route_to(0, op, recycle);
        }
        let s = op.shard();
        self.route_to(s, op, recycle)
    }

    fn route_to(
        &self,
        s: usize,
        op: TransportOp,
        recycle: &mut dyn FnMut(Vec<u8>),
    ) -> Option<usize> {
        let Some(tx) = self.tx.get(s) else {
            if let TransportOp::Send { plaintext, .. } = op {
                recycle(plaintext);
            }
            return None;
        };
        let control = !matches!(op, TransportOp::Send { .. });
        let failed = if control {
            // The shard drains its queue every round and never waits on
            // the core, so this cannot deadlock.
            match tx.send_timeout(ToShard::Op(op), CONTROL_SEND) {
                Ok(()) => None,
                Err(e) => Some(e.into_inner()),
            }
        } else {
            match tx.try_send(ToShard::Op(op)) {
                Ok(()) => None,
                Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => Some(m),
            }
        };
        if let Some(m) = failed {
            self.shared[s].queue_drops.fetch_add(1, Ordering::Relaxed);
            if let ToShard::Op(TransportOp::Send { plaintext, .. }) = m {
                recycle(plaintext);
            }
        }
        Some(s)
    }

    /// Wakes shard `s` if it sleeps.
    pub fn nudge(&self, s: usize) {
        if let Some(sh) = self.shared.get(s) {
            sh.nudge();
        }
    }

    /// The shards' send losses by cause, plus the core socket's.
    pub fn send_drops(&self) -> SendDrops {
        let mut d = self.core_drops;
        for sh in &self.shared {
            if let Ok(g) = sh.send_drops.lock() {
                d.merge(&g);
            }
        }
        d
    }

    /// Per-shard figures, the sum of the shards' transport counters, and
    /// the datagrams the shards' sockets lost on send.
    pub fn report(&self) -> (Vec<ShardStat>, Stats, u64) {
        let mut total = Stats::default();
        let mut send_dropped = 0;
        let per = self
            .shared
            .iter()
            .enumerate()
            .map(|(i, sh)| {
                let st = sh.stats.lock().map(|g| g.clone()).unwrap_or_default();
                total.merge(&st);
                send_dropped += sh.send_drops.lock().map_or(0, |g| g.total());
                ShardStat {
                    shard: i,
                    datagrams_in: st.datagrams_in,
                    datagrams_out: st.datagrams_out,
                    sessions: sh.sessions.load(Ordering::Relaxed),
                    handoffs_out: sh.handoffs_out.load(Ordering::Relaxed),
                    handoffs_in: sh.handoffs_in.load(Ordering::Relaxed),
                    queue_drops: sh.queue_drops.load(Ordering::Relaxed),
                }
            })
            .collect();
        (per, total, send_dropped)
    }

    /// Tells every shard to finish its queue and exit, and joins them.
    pub fn stop(&mut self) {
        for (tx, sh) in self.tx.iter().zip(&self.shared) {
            let _ = tx.send_timeout(ToShard::Stop, CONTROL_SEND);
            sh.waker.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.stop();
    }
}
