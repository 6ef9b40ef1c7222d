//! A shard thread's loop: its queue (core operations, hand-offs), its
//! socket (open, verify, hand to the core or the owning shard), held
//! datagrams waiting for their session's install, and batched sends.

use super::*;
use crate::backend::{Forward, FORWARD_CHUNK};
use moss_crypto::scramble::HEAD_LEN;

/// A shard thread: its backend and everything the per-datagram path needs.
pub(super) struct Worker {
    pub(super) backend: Box<dyn Backend>,
    /// Busy-poll bound after work ([`crate::spin::Spin`]).
    pub(super) busy_poll_us: u32,
    pub(super) ctx: Ctx,
}

pub(super) struct Ctx {
    pub(super) id: usize,
    pub(super) shard: SessionShard,
    pub(super) rx: Receiver<ToShard>,
    pub(super) free_rx: Receiver<Vec<u8>>,
    pub(super) core_tx: Sender<ToCore>,
    pub(super) recycle_tx: Sender<Vec<u8>>,
    pub(super) peers: Vec<Sender<ToShard>>,
    pub(super) shared: Vec<Arc<ShardShared>>,
    /// Ids of messages some shard verified already.
    pub(super) verified: Arc<VerifiedFilter>,
    /// Datagrams for sessions of this shard whose install has not arrived.
    pub(super) held: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// Sealed datagrams waiting for the next `send_batch`.
    pub(super) out: Vec<(SocketAddr, Vec<u8>)>,
    /// Free send buffers.
    pub(super) spare: Vec<Vec<u8>>,
    pub(super) stopping: bool,
    /// Origin of the relay buckets' clock.
    pub(super) epoch: Instant,
    /// The unmasked heads of the receive chunk being worked (one
    /// lane-wise pass per chunk, [`Forward::chunk`]).
    pub(super) heads: [Option<[u8; HEAD_LEN]>; FORWARD_CHUNK],
}

impl Worker {
    pub(super) fn run(mut self) {
        let mut batch = RecvBatch::new(BATCH);
        let mut spin = crate::spin::Spin::new(self.busy_poll_us);
        loop {
            let mut worked = self.ctx.drain_queue(self.backend.as_mut());
            if self.ctx.stopping {
                break;
            }
            let mut more = false;
            for _ in 0..RECV_BATCHES_PER_ROUND {
                let ctx = &mut self.ctx;
                ctx.shard.set_clock(ctx.epoch.elapsed());
                // Relayed datagrams leave from the receive buffer inside
                // this call (batched, no copy); the rest is worked here.
                let n = match self.backend.recv_forward_batch(&mut batch, ctx) {
                    Ok(r) => r.datagrams,
                    Err(e) => {
                        tracing::warn!(shard = self.ctx.id, error = %e, "receive failed");
                        0
                    }
                };
                more = n >= BATCH;
                worked |= n > 0;
                if !more {
                    break;
                }
                self.ctx.flush(self.backend.as_mut());
            }
            self.ctx.expire_held();
            self.ctx.flush(self.backend.as_mut());
            self.ctx.publish(self.backend.as_ref());
            if worked {
                spin.worked();
            }
            if more || worked || spin.keep_polling() {
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
        self.ctx.publish(self.backend.as_ref());
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
                        // Shards only ever hold UDP sessions.
                        Ok(to) => match to.udp() {
                            Some(to) => self.out.push((to, buf)),
                            None => self.spare.push(buf),
                        },
                        Err(e) => {
                            tracing::trace!(shard = self.id, index, error = %e, "not sealed");
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
                    let mut scratch = self.spare.pop().unwrap_or_default();
                    match self.shard.apply(op, &mut scratch) {
                        // A probe: its sealed keepalive goes out.
                        Ok(Some((to, _))) if to.udp().is_some() => {
                            if let Some(to) = to.udp() {
                                self.out.push((to, scratch));
                            }
                        }
                        _ => self.spare.push(scratch),
                    }
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
                    if let Some(to) = self.process_handoff(from, &mut bytes) {
                        // A relayed datagram handed over: it leaves with
                        // the shard's sends, in its buffer.
                        self.out.push((to, bytes));
                        if self.out.len() >= BATCH {
                            self.flush(backend);
                        }
                        continue;
                    }
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

    /// Works one datagram another shard handed over; returns the
    /// destination of a relayed one (the caller sends it on unchanged).
    fn process_handoff(&mut self, from: SocketAddr, bytes: &mut [u8]) -> Option<SocketAddr> {
        let r = self.shard.receive_forwarded(from, bytes);
        self.route(from, bytes, r, true)
    }

    /// Acts on what the shard made of one datagram (`forwarded`: handed
    /// over by another shard); returns the destination of a relayed one.
    fn route(
        &mut self,
        from: SocketAddr,
        bytes: &mut [u8],
        r: Inbound,
        forwarded: bool,
    ) -> Option<SocketAddr> {
        match r {
            Inbound::Frames { index, plain } => {
                self.frames_to_core(index, from, bytes.get(plain).unwrap_or(&[]))
            }
            Inbound::Handshake => self.copy_to_core(from, bytes),
            // Relay data plane: the datagram leaves untouched.
            Inbound::Relay { to } => return Some(to),
            Inbound::Foreign { owner } => {
                let Some(tx) = self.peers.get(owner) else {
                    // An index naming no shard of ours: nobody owns it.
                    self.shard.drop_input(DropReason::UnknownSession);
                    return None;
                };
                if forwarded {
                    // Never bounce a hand-off on.
                    self.shard.drop_input(DropReason::UnknownSession);
                    return None;
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
                // The core decides whether the index is one it is about to
                // install (then the held copy opens after the install) or
                // nobody's (then it answers with an unknown-session hint;
                // the shard still counts the drop when the copy expires).
                self.copy_to_core(from, bytes);
                if self.held.len() >= MAX_HELD {
                    self.shard.drop_input(DropReason::UnknownSession);
                    return None;
                }
                let mut v = self.spare.pop().unwrap_or_default();
                v.clear();
                v.extend_from_slice(bytes);
                self.held.push_back((Instant::now(), from, v));
            }
            Inbound::Dropped(_) => {}
        }
        None
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

    /// Queues a copy of a datagram this shard did not open for the core.
    fn copy_to_core(&mut self, from: SocketAddr, bytes: &[u8]) {
        let mut v = self.buffer();
        v.extend_from_slice(bytes);
        self.send_to_core(ToCore::Handshake {
            shard: self.id,
            from,
            bytes: v,
        });
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
            // What the kernel does not take is counted by the backend
            // ([`Backend::send_drops`], published each round).
            if let Err(e) = backend.send_batch(&views[..chunk.len()]) {
                tracing::trace!(shard = self.id, error = %e, "send failed");
            }
        }
        for (_, b) in self.out.drain(..) {
            if self.spare.len() < 2 * BATCH {
                self.spare.push(b);
            }
        }
    }

    /// Publishes the counters for snapshots (never waits for the lock).
    fn publish(&mut self, backend: &dyn Backend) {
        if let Ok(mut g) = self.shared[self.id].send_drops.try_lock() {
            *g = backend.send_drops();
        }
        if let Ok(mut g) = self.shared[self.id].stats.try_lock() {
            if *g != *self.shard.stats() {
                g.clone_from(self.shard.stats());
            }
        }
    }
}

/// The socket's datagrams, a receive chunk at a time: every head unmasked
/// in one lane-wise pass, then each datagram worked; `Some(to)` relays it,
/// as it is, to `to`.
impl Forward for Ctx {
    fn chunk(&mut self, datagrams: &[&[u8]]) {
        self.shard.peek_heads(datagrams, &mut self.heads);
    }

    fn datagram(&mut self, i: usize, from: SocketAddr, bytes: &mut [u8]) -> Option<SocketAddr> {
        let head = match self.heads.get(i) {
            Some(h) => *h,
            None => self.shard.peek_head(bytes),
        };
        let r = self.shard.receive_peeked(from, bytes, head);
        self.route(from, bytes, r, false)
    }
}
