//! Thread-per-core shards (`engine.shards` > 1, Linux).
//!
//! Each shard is a pinned thread with its own `SO_REUSEPORT` socket on the
//! node's port, its own backend, buffer pool and [`SessionShard`] (the
//! transport ciphers of the sessions whose index names it). The sans-IO
//! node runs on the core thread (the driver) in detached-transport mode:
//! handshakes, router, subscriptions, timers. Per datagram a shard unmasks
//! the header, opens established sessions' data in place, verifies the
//! signatures of the messages in it (once per message id across shards,
//! see [`moss_mesh::preverify`]) and hands the plaintext frames to the
//! core; the core hands back per-session plaintext
//! that the owning shard seals and sends. Handshake datagrams go to the
//! core as they are; data for a session another shard owns is handed to
//! that shard. Every queue is a bounded crossbeam channel: a full queue
//! drops and counts, the receive loop never blocks.

use crate::backend::{self, Backend, BackendError, BackendKind, OutDatagram, RecvBatch, Wakeup};
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
    /// A handshake datagram, untouched.
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
    send_dropped: AtomicU64,
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
}

/// A started shard set plus what the node builder needs to know.
pub(crate) struct Started {
    /// The core's handle.
    pub shards: Shards,
    /// A send-only socket for the core's handshake datagrams.
    pub core_io: Box<dyn Backend>,
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
/// `kind` on each and starts the pinned shard threads.
pub(crate) fn start(
    kind: BackendKind,
    bind: SocketAddr,
    shards: usize,
    keys: &MeshKeys,
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
            send_dropped: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        }));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verified = Arc::new(VerifiedFilter::new(VERIFIED_SLOTS));
    let mut threads = Vec::with_capacity(shards);
    for (id, ((backend, rx), free_rx)) in backends.into_iter().zip(rxs).zip(free_rxs).enumerate() {
        let worker = Worker {
            backend,
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
        },
        core_io: Box::new(SendOnly::new(core_sock).map_err(|source| BackendError::Io {
            backend: "shards",
            source,
        })?),
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
        let s = op.shard();
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

    /// Per-shard figures and the sum of the shards' transport counters.
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
                send_dropped += sh.send_dropped.load(Ordering::Relaxed);
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

/// A shard thread: its backend and everything the per-datagram path needs.
struct Worker {
    backend: Box<dyn Backend>,
    ctx: Ctx,
}

struct Ctx {
    id: usize,
    shard: SessionShard,
    rx: Receiver<ToShard>,
    free_rx: Receiver<Vec<u8>>,
    core_tx: Sender<ToCore>,
    recycle_tx: Sender<Vec<u8>>,
    peers: Vec<Sender<ToShard>>,
    shared: Vec<Arc<ShardShared>>,
    /// Ids of messages some shard verified already.
    verified: Arc<VerifiedFilter>,
    /// Datagrams for sessions of this shard whose install has not arrived.
    held: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// Sealed datagrams waiting for the next `send_batch`.
    out: Vec<(SocketAddr, Vec<u8>)>,
    /// Free send buffers.
    spare: Vec<Vec<u8>>,
    stopping: bool,
}

impl Worker {
    fn run(mut self) {
        let mut batch = RecvBatch::new(BATCH);
        loop {
            let worked = self.ctx.drain_queue(self.backend.as_mut());
            if self.ctx.stopping {
                break;
            }
            let mut more = false;
            for _ in 0..RECV_BATCHES_PER_ROUND {
                let ctx = &mut self.ctx;
                let n = match self
                    .backend
                    .recv_with(&mut batch, &mut |from, bytes| ctx.on_datagram(from, bytes))
                {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(shard = self.ctx.id, error = %e, "receive failed");
                        0
                    }
                };
                more = n == BATCH;
                if !more {
                    break;
                }
                self.ctx.flush(self.backend.as_mut());
            }
            self.ctx.expire_held();
            self.ctx.flush(self.backend.as_mut());
            self.ctx.publish();
            if more || worked {
                continue;
            }
            let me = &self.ctx.shared[self.ctx.id];
            me.parked.store(true, Ordering::SeqCst);
            if self.ctx.rx.is_empty() {
                let timeout = if self.ctx.held.is_empty() {
                    SHARD_IDLE
                } else {
                    HOLD / 4
                };
                if let Err(e) = self.backend.wait(Some(timeout)) {
                    tracing::warn!(shard = self.ctx.id, error = %e, "wait failed");
                }
            }
            me.parked.store(false, Ordering::SeqCst);
        }
        self.ctx.flush(self.backend.as_mut());
        self.ctx.publish();
    }
}

impl Ctx {
    /// Works (a bounded part of) the inbound queue; true if it was not
    /// empty.
    fn drain_queue(&mut self, backend: &mut dyn Backend) -> bool {
        let mut worked = false;
        for _ in 0..OPS_PER_ROUND {
            let Ok(m) = self.rx.try_recv() else {
                break;
            };
            worked = true;
            match m {
                ToShard::Op(TransportOp::Send { index, plaintext }) => {
                    let mut buf = self.spare.pop().unwrap_or_default();
                    match self.shard.seal(index, &plaintext, &mut buf) {
                        Ok(to) => self.out.push((to, buf)),
                        Err(e) => {
                            tracing::debug!(shard = self.id, index, error = %e, "not sealed");
                            self.spare.push(buf);
                        }
                    }
                    let _ = self.recycle_tx.try_send(plaintext);
                    if self.out.len() == BATCH {
                        self.flush(backend);
                    }
                }
                ToShard::Op(op) => {
                    let install = matches!(op, TransportOp::Install { .. });
                    let mut scratch = Vec::new();
                    let _ = self.shard.apply(op, &mut scratch);
                    self.shared[self.id]
                        .sessions
                        .store(self.shard.session_count(), Ordering::Relaxed);
                    if install {
                        self.retry_held();
                    }
                }
                ToShard::Handoff { from, mut bytes } => {
                    self.shared[self.id]
                        .handoffs_in
                        .fetch_add(1, Ordering::Relaxed);
                    self.process(from, &mut bytes, true);
                    if self.spare.len() < BATCH {
                        bytes.clear();
                        self.spare.push(bytes);
                    }
                }
                ToShard::Stop => {
                    self.stopping = true;
                    break;
                }
            }
        }
        worked
    }

    /// A datagram from this shard's socket.
    fn on_datagram(&mut self, from: SocketAddr, bytes: &mut [u8]) {
        self.process(from, bytes, false);
    }

    fn process(&mut self, from: SocketAddr, bytes: &mut [u8], forwarded: bool) {
        let r = if forwarded {
            self.shard.receive_forwarded(from, bytes)
        } else {
            self.shard.receive(from, bytes)
        };
        match r {
            Inbound::Frames { index, plain } => {
                self.frames_to_core(index, from, bytes.get(plain).unwrap_or(&[]))
            }
            Inbound::Handshake => {
                let mut v = self.buffer();
                v.extend_from_slice(bytes);
                self.send_to_core(ToCore::Handshake {
                    shard: self.id,
                    from,
                    bytes: v,
                });
            }
            Inbound::Foreign { owner } => {
                let Some(tx) = self.peers.get(owner) else {
                    // An index naming no shard of ours: nobody owns it.
                    return self.shard.drop_input(DropReason::UnknownSession);
                };
                if forwarded {
                    // Never bounce a hand-off on.
                    return self.shard.drop_input(DropReason::UnknownSession);
                }
                let mut v = self.spare.pop().unwrap_or_default();
                v.clear();
                v.extend_from_slice(bytes);
                match tx.try_send(ToShard::Handoff { from, bytes: v }) {
                    Ok(()) => {
                        self.shared[self.id]
                            .handoffs_out
                            .fetch_add(1, Ordering::Relaxed);
                        self.shared[owner].nudge();
                    }
                    Err(_) => {
                        self.shared[self.id]
                            .queue_drops
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Inbound::Unknown { .. } => {
                if self.held.len() >= MAX_HELD {
                    return self.shard.drop_input(DropReason::UnknownSession);
                }
                let mut v = self.spare.pop().unwrap_or_default();
                v.clear();
                v.extend_from_slice(bytes);
                self.held.push_back((Instant::now(), from, v));
            }
            Inbound::Dropped(_) => {}
        }
    }

    /// A plaintext buffer from the pool the core returns to.
    fn buffer(&mut self) -> Vec<u8> {
        match self.free_rx.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(moss_mesh::wire::MAX_DATAGRAM),
        }
    }

    fn send_to_core(&mut self, m: ToCore) {
        if self.core_tx.try_send(m).is_err() {
            self.shared[self.id]
                .queue_drops
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Copies opened plaintext into a pooled buffer, verifies its signed
    /// messages and queues it for the core.
    fn frames_to_core(&mut self, index: u32, from: SocketAddr, plain: &[u8]) {
        let mut v = self.buffer();
        v.extend_from_slice(plain);
        let verified = preverify(&v, &self.verified);
        self.send_to_core(ToCore::Frames {
            shard: self.id,
            index,
            from,
            bytes: v,
            verified,
        });
    }

    /// Runs held datagrams again after an install.
    fn retry_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (t, from, mut bytes) in held {
            let r = self.shard.receive_forwarded(from, &mut bytes);
            match r {
                Inbound::Unknown { .. } => self.held.push_back((t, from, bytes)),
                Inbound::Frames { index, plain } => {
                    self.frames_to_core(index, from, bytes.get(plain).unwrap_or(&[]));
                    self.spare.push(bytes);
                }
                _ => self.spare.push(bytes),
            }
        }
        self.spare.truncate(BATCH);
    }

    /// Drops held datagrams whose session never arrived.
    fn expire_held(&mut self) {
        let now = Instant::now();
        while let Some((t, _, _)) = self.held.front() {
            if now.duration_since(*t) < HOLD {
                break;
            }
            if let Some((_, _, b)) = self.held.pop_front() {
                self.shard.drop_input(DropReason::UnknownSession);
                if self.spare.len() < BATCH {
                    self.spare.push(b);
                }
            }
        }
    }

    /// Sends the sealed datagrams.
    fn flush(&mut self, backend: &mut dyn Backend) {
        if self.out.is_empty() {
            return;
        }
        const UNSPEC: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
        ));
        for chunk in self.out.chunks(BATCH) {
            let mut views = [OutDatagram {
                to: UNSPEC,
                bytes: &[],
            }; BATCH];
            for (v, (to, b)) in views.iter_mut().zip(chunk) {
                *v = OutDatagram { to: *to, bytes: b };
            }
            let sent = match backend.send_batch(&views[..chunk.len()]) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(shard = self.id, error = %e, "send failed");
                    0
                }
            };
            let lost = chunk.len() - sent.min(chunk.len());
            if lost > 0 {
                self.shared[self.id]
                    .send_dropped
                    .fetch_add(lost as u64, Ordering::Relaxed);
            }
        }
        for (_, b) in self.out.drain(..) {
            if self.spare.len() < 2 * BATCH {
                self.spare.push(b);
            }
        }
    }

    /// Publishes the counters for snapshots (never waits for the lock).
    fn publish(&mut self) {
        if let Ok(mut g) = self.shared[self.id].stats.try_lock() {
            if *g != *self.shard.stats() {
                g.clone_from(self.shard.stats());
            }
        }
    }
}

/// The core thread's socket: a clone of shard 0's, used only to send
/// handshake datagrams (same port, so peers see one address).
struct SendOnly {
    socket: UdpSocket,
    waker: Arc<dyn Wakeup>,
}

struct NoWake;

impl Wakeup for NoWake {
    fn wake(&self) {}
}

impl SendOnly {
    fn new(socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            waker: Arc::new(NoWake),
        })
    }
}

impl Backend for SendOnly {
    fn name(&self) -> &'static str {
        "shards"
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.filled = 0;
        Ok(0)
    }

    fn send_batch(&mut self, out: &[OutDatagram<'_>]) -> io::Result<usize> {
        let mut sent = 0;
        for d in out {
            match self.socket.send_to(d.bytes, d.to) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => tracing::debug!(to = %d.to, error = %e, "handshake send failed"),
            }
        }
        Ok(sent)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(t) = timeout {
            std::thread::sleep(t.min(Duration::from_millis(10)));
        }
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Wakeup> {
        self.waker.clone()
    }
}
