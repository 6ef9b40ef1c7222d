//! The host's side of the engine thread: the commands the handle sends,
//! the state the handle reads without a round trip, and where the node's
//! output goes (per-topic sinks, the node-wide message channel, host
//! events, callers waiting on a dial).

use crate::backend::Wakeup;
use crate::event::{Event, Message};
use crossbeam_channel::{Sender, TrySendError};
use moss_mesh::{Node as Core, Path, PeerId, PeerInfo, Stats};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// State the host handle reads without a round trip.
pub(crate) struct Shared {
    pub peer_count: AtomicUsize,
    pub parked: AtomicBool,
    pub stopped: AtomicBool,
    pub events_dropped: AtomicU64,
    pub messages_dropped: AtomicU64,
    /// Id of the next [`crate::Subscription`].
    pub next_subscription: AtomicU64,
    /// How long a subscriber polls its channel before it blocks
    /// (`engine.busy_poll_us`).
    pub busy_poll: std::time::Duration,
    pub waker: Arc<dyn Wakeup>,
    /// Publish buffers the engine is done with, for the next publishes.
    pub publish_buffers: BufferPool,
}

/// Buffers that travel from the handle to the engine in publish commands
/// and back, so a steady publisher allocates nothing per message. Bounded:
/// at most [`BufferPool::KEPT`] buffers of at most [`BufferPool::MAX_KEPT`]
/// bytes wait here; others are freed.
pub(crate) struct BufferPool {
    tx: Sender<Vec<u8>>,
    rx: crossbeam_channel::Receiver<Vec<u8>>,
}

impl BufferPool {
    /// Buffers kept at most.
    pub const KEPT: usize = 256;
    /// Largest buffer capacity kept.
    pub const MAX_KEPT: usize = 16 * 1024;

    /// An empty pool.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(Self::KEPT);
        Self { tx, rx }
    }

    /// An empty buffer: a returned one, or a new one.
    pub fn take(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_default()
    }

    /// Returns `buf` for reuse (dropped if the pool is full or it is large).
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= Self::MAX_KEPT {
            buf.clear();
            let _ = self.tx.try_send(buf);
        }
    }
}

impl Shared {
    /// Wakes the engine if it is (about to be) asleep.
    pub fn nudge(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Marks the node stopped for its handle: no peers, calls fail.
    pub fn mark_stopped(&self) {
        self.peer_count.store(0, Ordering::SeqCst);
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// Where the messages of a topic go.
pub(crate) enum Sink {
    /// A subscription's own channel, with the subscription's id.
    Channel(u64, Sender<Message>),
    /// The node-wide message channel.
    Firehose,
}

/// What the engine reports on request.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Node counters.
    pub stats: Stats,
    /// Established peers.
    pub peers: Vec<PeerInfo>,
    /// Our topics.
    pub subscriptions: Vec<String>,
    /// Session slots (established and handshaking).
    pub sessions: usize,
    /// Datagrams the kernel refused to take (send queue full).
    pub send_dropped: u64,
    /// The UDP part of `send_dropped` by the kernel's reason.
    pub send_drops: crate::backend::SendDrops,
    /// Publishes that found no subscribed peer when the engine ran them.
    pub publish_unrouted: u64,
    /// The telemetry snapshot (`{}` when telemetry is off).
    pub network: moss_mesh::NetworkSnapshot,
    /// Per-shard figures (one entry when the engine runs unsharded).
    pub shards: Vec<crate::shard::ShardStat>,
    /// The NAT class the node concluded.
    pub nat_type: moss_mesh::NatType,
    /// Established peers whose session came up through a hole punch.
    pub punched: Vec<moss_mesh::PeerId>,
    /// Established peers reached by a punch: offer-to-session time (ms)
    /// and the punch offers it took.
    pub punch_ms: Vec<(moss_mesh::PeerId, u64, u32)>,
    /// The birthday-spray sockets' counters.
    pub spray: crate::spray::SprayStats,
    /// The node is a supernode now.
    pub supernode: bool,
}

/// Host → engine commands.
pub(crate) enum Command {
    /// `buf` holds the topic's bytes, then the payload.
    Publish {
        buf: Vec<u8>,
        topic_len: usize,
    },
    Subscribe {
        topic: String,
        sink: Sink,
    },
    /// Every subscription of the topic ends.
    Unsubscribe {
        topic: String,
    },
    /// One [`crate::Subscription`] was dropped.
    DropSubscription {
        topic: String,
        id: u64,
    },
    Connect {
        addr: SocketAddr,
        reply: Option<Sender<Result<PeerId, String>>>,
    },
    Snapshot(Sender<Snapshot>),
    SetAppScore(moss_mesh::pubsub::AppScore),
    Chain {
        limit: usize,
        reply: Sender<Vec<moss_mesh::ChainLink>>,
    },
    /// The port-mapping thread's external address (None: no mapping now).
    PortMapped(Option<SocketAddr>),
    Stop,
}

/// The engine's host-facing state.
pub(crate) struct Host {
    pub shared: Arc<Shared>,
    events: Sender<Event>,
    firehose: Sender<Message>,
    topic_sinks: HashMap<String, Vec<(u64, Sender<Message>)>>,
    firehose_topics: HashSet<String>,
    connect_waiters: HashMap<SocketAddr, Vec<Sender<Result<PeerId, String>>>>,
    /// Publishes that found no subscribed peer.
    pub publish_unrouted: u64,
}

/// The address the engine's host events carry for a path: a UDP or TCP
/// path's own, a relayed peer's address as its supernode sees it (else the
/// supernode's), `0.0.0.0:0` for a host channel
/// ([`moss_mesh::Node::path_addr`]).
fn udp_of(core: &Core, p: Path) -> SocketAddr {
    core.path_addr(p)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl Host {
    /// Host state over these channels.
    pub fn new(shared: Arc<Shared>, events: Sender<Event>, firehose: Sender<Message>) -> Self {
        Self {
            shared,
            events,
            firehose,
            topic_sinks: HashMap::new(),
            firehose_topics: HashSet::new(),
            connect_waiters: HashMap::new(),
            publish_unrouted: 0,
        }
    }

    /// Subscribes the core to `topic` with output to `sink`.
    pub fn subscribe(&mut self, core: &mut Core, topic: String, sink: Sink) {
        core.subscribe(&topic);
        match sink {
            Sink::Channel(id, tx) => self.topic_sinks.entry(topic).or_default().push((id, tx)),
            Sink::Firehose => {
                self.firehose_topics.insert(topic);
            }
        }
    }

    /// Ends every subscription of `topic`.
    pub fn unsubscribe(&mut self, core: &mut Core, topic: &str) {
        self.topic_sinks.remove(topic);
        self.firehose_topics.remove(topic);
        core.unsubscribe(topic);
    }

    /// Subscription `id` of `topic` was dropped: the node leaves the topic
    /// at once when nothing else takes its messages.
    pub fn drop_subscription(&mut self, core: &mut Core, topic: &str, id: u64) {
        let Some(sinks) = self.topic_sinks.get_mut(topic) else {
            return;
        };
        sinks.retain(|(i, _)| *i != id);
        if sinks.is_empty() {
            self.topic_sinks.remove(topic);
            if !self.firehose_topics.contains(topic) {
                core.unsubscribe(topic);
            }
        }
    }

    /// Dials `addr`, answering `reply` when the session is up or fails.
    pub fn connect(
        &mut self,
        core: &mut Core,
        addr: SocketAddr,
        reply: Option<Sender<Result<PeerId, String>>>,
    ) {
        let connected = core.peers().into_iter().find(|p| p.addr == addr);
        match (connected, reply) {
            (Some(p), Some(r)) => {
                let _ = r.send(Ok(p.peer));
            }
            (Some(_), None) => {}
            (None, reply) => {
                if let Some(r) = reply {
                    self.connect_waiters.entry(addr).or_default().push(r);
                }
                core.connect(addr);
            }
        }
    }

    fn emit(&self, e: Event) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(e) {
            self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn answer_waiters(&mut self, addr: SocketAddr, r: Result<PeerId, String>) {
        if let Some(ws) = self.connect_waiters.remove(&addr) {
            for w in ws {
                let _ = w.send(r.clone());
            }
        }
    }

    /// Hands every core event to its destination. With a TCP carrier, a
    /// UDP dial that failed is retried over TCP (its waiters wait on).
    pub fn dispatch(
        &mut self,
        core: &mut Core,
        mut tcp: Option<&mut crate::tcp::Carrier>,
        now: std::time::Duration,
    ) {
        if let Some(t) = tcp.as_deref_mut() {
            for a in t.take_failed() {
                self.answer_waiters(a, Err("udp and tcp dials failed".into()));
            }
        }
        while let Some(e) = core.poll_event() {
            match e {
                moss_mesh::Event::PeerConnected { peer, addr } => {
                    let addr = udp_of(core, addr);
                    self.answer_waiters(addr, Ok(peer));
                    self.emit(Event::PeerJoined { peer, addr });
                }
                moss_mesh::Event::PeerDisconnected { peer, addr, reason } => {
                    self.emit(Event::PeerLeft {
                        peer,
                        addr: udp_of(core, addr),
                        reason: reason.as_str(),
                    });
                }
                moss_mesh::Event::ConnectFailed { addr, reason } => {
                    if let Some(t) = tcp.as_deref_mut() {
                        t.handshake_failed(addr);
                        if let Path::Udp(a) = addr {
                            if t.fallback(a, now) {
                                continue;
                            }
                        }
                    }
                    // A failed relayed handshake answers no dial of an
                    // address (those were answered when they failed).
                    if !matches!(addr, Path::Relay { .. }) {
                        self.answer_waiters(udp_of(core, addr), Err(reason));
                    }
                }
                moss_mesh::Event::Message(m) => self.route(core, m),
                moss_mesh::Event::SupernodePromoted => self.emit(Event::SupernodePromoted),
                moss_mesh::Event::SupernodeRevoked { reason } => {
                    self.emit(Event::SupernodeRevoked { reason })
                }
                moss_mesh::Event::RelayMigrated { peer, from, to } => {
                    self.emit(Event::RelayMigrated {
                        peer,
                        from: from.to_string(),
                        to: to.to_string(),
                    })
                }
            }
        }
        self.shared
            .peer_count
            .store(core.peer_count(), Ordering::SeqCst);
    }

    fn route(&mut self, core: &mut Core, m: moss_mesh::Message) {
        let msg = Message {
            topic: m.topic,
            from: m.from,
            data: m.data,
            id: m.id,
        };
        let to_firehose = self.firehose_topics.contains(&*msg.topic);
        let mut now_empty = false;
        // The message moves into the last destination; only additional
        // destinations cost a clone.
        let mut pending = Some(msg);
        let shared = &self.shared;
        if let Some(sinks) = self
            .topic_sinks
            .get_mut(pending.as_ref().map_or("", |m| &m.topic))
        {
            let last = sinks.len().saturating_sub(1);
            let mut i = 0;
            sinks.retain(|(_, tx)| {
                let m = if i == last && !to_firehose {
                    pending.take()
                } else {
                    pending.clone()
                };
                i += 1;
                let Some(m) = m else { return true };
                match tx.try_send(m) {
                    Ok(()) => true,
                    Err(TrySendError::Full(m)) => {
                        shared.messages_dropped.fetch_add(1, Ordering::Relaxed);
                        pending.get_or_insert(m);
                        true
                    }
                    Err(TrySendError::Disconnected(m)) => {
                        pending.get_or_insert(m);
                        false
                    }
                }
            });
            now_empty = sinks.is_empty();
        }
        if to_firehose {
            if let Some(m) = pending.take() {
                if let Err(TrySendError::Full(_)) = self.firehose.try_send(m) {
                    self.shared.messages_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if now_empty {
            if let Some(m) = pending.as_ref() {
                let topic = m.topic.clone();
                self.topic_sinks.remove(&*topic);
                if !self.firehose_topics.contains(&*topic) {
                    core.unsubscribe(&topic);
                }
            }
        }
    }
}
