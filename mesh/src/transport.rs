//! The node's one transport path (the quinn Endpoint/Connection split):
//! every established session's keys live in a [`SessionShard`]. A
//! single-threaded node owns that shard ([`Transport::Local`]): it opens
//! and seals datagrams itself. A sharded node ([`Transport::Remote`]) hands
//! the keys to the engine shards and gets their plaintext back; what it
//! seals becomes [`TransportOp::Send`] for the owning shard. Either way the
//! node calls the same few operations here, and the wire bytes are the
//! same.

use crate::path::Path;
use crate::relay::route::{Route, RouteLimits};
use crate::session::{Session, Stamp};
use crate::shard::{with_owner, Inbound, SessionShard, ShardSession, TransportOp};
use crate::stats::Stats;
use crate::wire::MAX_DATAGRAM;
use crate::Time;
use moss_crypto::{MeshKeys, TransportCipher};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination (compares equal to a `SocketAddr` for a UDP path).
    pub to: Path,
    /// Bytes (return the buffer with [`crate::Node::recycle`] to avoid
    /// allocation).
    pub bytes: Vec<u8>,
}

/// Transmit buffers kept for reuse.
const FREE_BUFFERS: usize = 256;

/// Where sessions' keys live and how sealed datagrams leave.
pub(crate) enum Transport {
    /// This node opens and seals: the shard holds every session's keys.
    Local(SessionShard),
    /// Engine shards open and seal; the node queues work for them.
    Remote(Remote),
}

/// The node's side of detached shards.
pub(crate) struct Remote {
    /// Number of shards.
    pub shards: usize,
    /// Owner of the next index drawn.
    next_owner: usize,
    /// Round-robin owner of the next outbound dial.
    next_dial: usize,
    /// Work for the shards.
    ops: VecDeque<TransportOp>,
    /// Classifies the datagrams the node is fed (handshakes come through;
    /// data of a shard's session is [`Inbound::Unknown`] here), and holds
    /// the keys of sessions on paths the engine shards cannot send on
    /// (TCP connections, which the engine thread carries): those the node
    /// opens and seals itself.
    classifier: SessionShard,
}

impl Remote {
    /// Transport over `shards` engine shards of a node with these keys.
    pub fn new(shards: usize, keys: &MeshKeys) -> Self {
        Self {
            shards,
            next_owner: 0,
            next_dial: 0,
            ops: VecDeque::new(),
            classifier: SessionShard::whole(keys),
        }
    }
}

/// Sealed datagrams waiting for the driver, and the buffers they return.
#[derive(Default)]
pub(crate) struct Outbox {
    transmits: VecDeque<Transmit>,
    free: Vec<Vec<u8>>,
}

impl Outbox {
    /// An empty buffer (recycled when one is free).
    pub fn buffer(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(MAX_DATAGRAM))
    }

    /// Gives a session's pending datagram a buffer from the pool when it
    /// has none: with local transport an idle session holds no buffer
    /// between datagrams (its pending one goes back to the pool when
    /// sealed), and a busy one takes a recycled one without allocating.
    pub fn fill(&mut self, pending: &mut Vec<u8>) {
        if pending.capacity() == 0 {
            *pending = self.buffer();
        }
    }

    /// Returns a buffer for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < FREE_BUFFERS {
            buf.clear();
            self.free.push(buf);
        }
    }

    /// Queues a datagram to `to` and counts it.
    pub fn emit(&mut self, stats: &mut Stats, to: Path, bytes: Vec<u8>) {
        stats.datagrams_out += 1;
        stats.bytes_out += bytes.len() as u64;
        self.transmits.push_back(Transmit { to, bytes });
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty()
    }

    /// The next datagram.
    pub fn pop(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
}

impl Transport {
    /// The local transport of a single-threaded node.
    pub fn local(keys: &MeshKeys) -> Self {
        Self::Local(SessionShard::whole(keys))
    }

    /// Classifies (and, locally, opens in place) one received datagram.
    pub fn open(&mut self, from: Path, datagram: &mut [u8]) -> Inbound {
        match self {
            Self::Local(shard) => shard.open(from, datagram),
            Self::Remote(r) => r.classifier.open(from, datagram),
        }
    }

    /// Takes the keys of a just-established session (a sharded node keeps
    /// those of TCP and channel paths: the shards own UDP sockets only).
    pub fn install(&mut self, index: u32, remote_index: u32, path: Path, cipher: TransportCipher) {
        let session = Box::new(ShardSession::new(remote_index, path, cipher));
        match self {
            Self::Local(shard) => shard.install(index, session),
            // The engine shards send on UDP sockets only: TCP connections
            // and host channels (spray sockets) are the core thread's.
            Self::Remote(r) if matches!(path, Path::Tcp { .. } | Path::Channel(_)) => {
                r.classifier.install(index, session)
            }
            Self::Remote(r) => r.ops.push_back(TransportOp::Install { index, session }),
        }
    }

    /// Forgets the keys of an ended session.
    pub fn remove(&mut self, index: u32) {
        match self {
            Self::Local(shard) => {
                shard.remove(index);
            }
            Self::Remote(r) if r.classifier.contains(index) => {
                r.classifier.remove(index);
            }
            Self::Remote(r) => r.ops.push_back(TransportOp::Remove { index }),
        }
    }

    /// Seals session `index`'s pending frames (with `allow_empty`, an empty
    /// keepalive too) into one datagram: locally into the outbox, remotely
    /// as a send for its shard.
    pub fn seal(
        &mut self,
        out: &mut Outbox,
        stats: &mut Stats,
        index: u32,
        s: &mut Session,
        allow_empty: bool,
        now: Time,
    ) {
        let Some(e) = s.established_mut() else {
            return;
        };
        if e.pending.is_empty() && !allow_empty {
            return;
        }
        let shard = match self {
            Self::Local(shard) => shard,
            Self::Remote(r) if r.classifier.contains(index) => &mut r.classifier,
            Self::Remote(r) => {
                let plaintext = std::mem::replace(&mut e.pending, out.buffer());
                s.last_send = Stamp::at(now);
                r.ops.push_back(TransportOp::Send { index, plaintext });
                return;
            }
        };
        let mut buf = out.buffer();
        let sealed = shard.seal(index, &e.pending, &mut buf);
        out.recycle(std::mem::take(&mut e.pending));
        match sealed {
            Ok(to) => {
                s.last_send = Stamp::at(now);
                out.emit(stats, to, buf);
            }
            // Counter exhausted: this session cannot send again.
            Err(_) => out.recycle(buf),
        }
    }

    /// Relay data plane (supernode): forward datagrams for `index` along
    /// `route`; on every shard when detached.
    pub fn route(&mut self, index: u32, route: Route, limits: RouteLimits) {
        let op = TransportOp::Route {
            index,
            route,
            limits,
        };
        match self {
            Self::Local(shard) => {
                let _ = shard.apply(op, &mut Vec::new());
            }
            Self::Remote(r) => r.ops.push_back(op),
        }
    }

    /// Forgets the routes of relay session `session`.
    pub fn unroute(&mut self, session: u64) {
        let op = TransportOp::Unroute { session };
        match self {
            Self::Local(shard) => {
                let _ = shard.apply(op, &mut Vec::new());
            }
            Self::Remote(r) => r.ops.push_back(op),
        }
    }

    /// Seals an empty keepalive of session `index` to `to` instead of its
    /// path (a direct-path probe of a relayed session).
    pub fn probe(&mut self, out: &mut Outbox, stats: &mut Stats, index: u32, to: SocketAddr) {
        match self {
            Self::Local(shard) => {
                let mut buf = out.buffer();
                match shard.apply(TransportOp::Probe { index, to }, &mut buf) {
                    Ok(Some((to, _))) => out.emit(stats, to, buf),
                    _ => out.recycle(buf),
                }
            }
            Self::Remote(r) => r.ops.push_back(TransportOp::Probe { index, to }),
        }
    }

    /// The clock relay buckets refill by (the local shard's; engine shards
    /// keep their own).
    pub fn set_clock(&mut self, now: Time) {
        if let Self::Local(shard) = self {
            shard.set_clock(now);
        }
    }

    /// The next outbound dial's session goes to the next shard in turn
    /// (the reply lands wherever the kernel hashes it; a mismatch is handed
    /// over between shards).
    pub fn pick_dial_owner(&mut self) {
        if let Self::Remote(r) = self {
            r.next_owner = r.next_dial;
            r.next_dial = (r.next_dial + 1) % r.shards;
        }
    }

    /// Sessions created as responder by a datagram shard `shard` received
    /// are owned by that shard.
    pub fn set_owner(&mut self, shard: usize) {
        if let Self::Remote(r) = self {
            r.next_owner = shard % r.shards;
        }
    }

    /// `random` with the owning shard's bits, when sharded.
    pub fn owned_index(&self, random: u32) -> u32 {
        match self {
            Self::Local(_) => random,
            Self::Remote(r) => with_owner(random, r.next_owner),
        }
    }

    /// The shard count of a sharded node.
    pub fn shards(&self) -> Option<usize> {
        match self {
            Self::Local(_) => None,
            Self::Remote(r) => Some(r.shards),
        }
    }

    /// True if there is work for the shards.
    pub fn has_ops(&self) -> bool {
        matches!(self, Self::Remote(r) if !r.ops.is_empty())
    }

    /// The next operation for the shards.
    pub fn pop_op(&mut self) -> Option<TransportOp> {
        match self {
            Self::Local(_) => None,
            Self::Remote(r) => r.ops.pop_front(),
        }
    }
}
