//! The node's one transport path (the quinn Endpoint/Connection split):
//! every established session's keys are opened and sealed by a
//! [`SessionShard`]. A single-threaded node owns that shard
//! ([`Transport::Local`]): it opens and seals datagrams itself, and each
//! session's transport record stays in its established state in the
//! session table (one table: no second map by index, the path not kept a
//! third time). A sharded node ([`Transport::Remote`]) hands the keys to
//! the engine shards and gets their plaintext back; what it seals becomes
//! [`TransportOp::Send`] for the owning shard. Either way the node calls
//! the same few operations here, and the wire bytes are the same.

use crate::path::Path;
use crate::relay::route::{Route, RouteLimits};
use crate::session::{Session, Stamp};
use crate::shard::{with_owner, Inbound, SessionShard, ShardSession, TransportOp};
use crate::stats::Stats;
use crate::table::SessionTable;
use crate::wire::MAX_DATAGRAM;
use crate::Time;
use moss_crypto::scramble::HEAD_LEN;
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
    /// This node opens and seals; every session's keys are in its slot.
    Local(Local),
    /// Engine shards open and seal; the node queues work for them.
    Remote(Remote),
}

/// Most direct-path probes waiting for the next flush.
const MAX_PROBES: usize = 256;

/// The transport of a single-threaded node.
pub(crate) struct Local {
    /// Opens and seals with the records the session table holds (its own
    /// map stays empty).
    shard: SessionShard,
    /// Direct-path probes asked for where the session table is not at
    /// hand: sealed at the next flush ([`Transport::flush_probes`]).
    probes: Vec<(u32, SocketAddr)>,
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
        Self::Local(Local {
            shard: SessionShard::whole(keys),
            probes: Vec::new(),
        })
    }

    /// Classifies (and, locally, opens in place) one received datagram;
    /// a single-threaded node's keys are in `table`.
    pub fn open(&mut self, from: Path, datagram: &mut [u8], table: &mut SessionTable) -> Inbound {
        let head = self.peek_head(datagram);
        self.open_peeked(from, datagram, head, table)
    }

    /// [`Transport::open`] of a datagram whose head
    /// [`Transport::peek_heads`] unmasked already (`head`: that peek).
    pub fn open_peeked(
        &mut self,
        from: Path,
        datagram: &mut [u8],
        head: Option<[u8; HEAD_LEN]>,
        table: &mut SessionTable,
    ) -> Inbound {
        match self {
            Self::Local(l) => l.shard.open_in(from, datagram, head, table),
            Self::Remote(r) => r.classifier.open_peeked(from, datagram, head),
        }
    }

    /// The unmasked heads of a receive chunk in one lane-wise pass, for
    /// [`Transport::open_peeked`].
    pub fn peek_heads(&self, datagrams: &[&[u8]], heads: &mut [Option<[u8; HEAD_LEN]>]) {
        self.shard().peek_heads(datagrams, heads);
    }

    /// The unmasked head of `datagram` (`None` if it is too short).
    pub fn peek_head(&self, datagram: &[u8]) -> Option<[u8; HEAD_LEN]> {
        self.shard().peek_head(datagram)
    }

    /// The shard that opens what this node is fed.
    fn shard(&self) -> &SessionShard {
        match self {
            Self::Local(l) => &l.shard,
            Self::Remote(r) => &r.classifier,
        }
    }

    /// Takes the keys of a just-established session (a sharded node keeps
    /// those of TCP and channel paths: the shards own UDP sockets only).
    /// Returns the record for the session itself to keep when transport
    /// is local ([`crate::session::Established::keys`]). A `relayed`
    /// session's `path` is its supernode's address, from which its data
    /// never moves it.
    #[must_use = "a local session's keys are its own to keep"]
    pub fn install(
        &mut self,
        index: u32,
        remote_index: u32,
        path: Path,
        cipher: TransportCipher,
        relayed: bool,
    ) -> Option<Box<ShardSession>> {
        let mut session = ShardSession::new(remote_index, path, cipher);
        if relayed {
            session = session.relayed();
        }
        let session = Box::new(session);
        match self {
            Self::Local(_) => return Some(session),
            // The engine shards send on UDP sockets only: TCP connections
            // and host channels (spray sockets) are the core thread's.
            Self::Remote(r) if matches!(path, Path::Tcp { .. } | Path::Channel(_)) => {
                r.classifier.install(index, session)
            }
            Self::Remote(r) => r.ops.push_back(TransportOp::Install { index, session }),
        }
        None
    }

    /// Forgets the keys of an ended session (a local session's went with
    /// its slot).
    pub fn remove(&mut self, index: u32) {
        match self {
            Self::Local(l) => l.probes.retain(|&(i, _)| i != index),
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
        let mut buf = out.buffer();
        let sealed = match self {
            Self::Local(l) => match e.keys.as_deref_mut() {
                Some(keys) => l.shard.seal_record(keys, &e.pending, &mut buf),
                None => {
                    // Not installed: nothing can be sealed.
                    out.recycle(buf);
                    return;
                }
            },
            Self::Remote(r) if r.classifier.contains(index) => {
                r.classifier.seal(index, &e.pending, &mut buf)
            }
            Self::Remote(r) => {
                out.recycle(buf);
                let plaintext = std::mem::replace(&mut e.pending, out.buffer());
                s.last_send = Stamp::at(now);
                r.ops.push_back(TransportOp::Send { index, plaintext });
                return;
            }
        };
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
            Self::Local(l) => {
                let _ = l.shard.apply(op, &mut Vec::new());
            }
            Self::Remote(r) => r.ops.push_back(op),
        }
    }

    /// Forgets the routes of relay session `session`.
    pub fn unroute(&mut self, session: u64) {
        let op = TransportOp::Unroute { session };
        match self {
            Self::Local(l) => {
                let _ = l.shard.apply(op, &mut Vec::new());
            }
            Self::Remote(r) => r.ops.push_back(op),
        }
    }

    /// Seals an empty keepalive of session `index` to `to` instead of its
    /// path (a direct-path probe of a relayed session): locally at the
    /// next flush ([`Transport::flush_probes`], where the session's keys
    /// are at hand), else by its shard. `out` and `stats` are the ones the
    /// flush uses.
    pub fn probe(&mut self, _out: &mut Outbox, _stats: &mut Stats, index: u32, to: SocketAddr) {
        match self {
            Self::Local(l) => {
                if l.probes.len() < MAX_PROBES && !l.probes.contains(&(index, to)) {
                    l.probes.push((index, to));
                }
            }
            Self::Remote(r) => r.ops.push_back(TransportOp::Probe { index, to }),
        }
    }

    /// Seals the direct-path probes asked for since the last flush (local
    /// transport; the keys are in `table`), in the order asked.
    pub fn flush_probes(&mut self, out: &mut Outbox, stats: &mut Stats, table: &mut SessionTable) {
        let Self::Local(l) = self else {
            return;
        };
        for (index, to) in l.probes.drain(..) {
            let Some(keys) = table
                .established_mut(index)
                .and_then(|e| e.keys.as_deref_mut())
            else {
                continue;
            };
            let mut buf = out.buffer();
            match l.shard.seal_record(keys, &[], &mut buf) {
                Ok(_) => out.emit(stats, Path::Udp(to), buf),
                Err(_) => out.recycle(buf),
            }
        }
    }

    /// The clock relay buckets refill by (the local shard's; engine shards
    /// keep their own).
    pub fn set_clock(&mut self, now: Time) {
        if let Self::Local(l) = self {
            l.shard.set_clock(now);
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
