//! The engine thread: owns the sans-IO node and one backend, and moves
//! batches between them. Commands from the host arrive over a bounded
//! channel; the thread only sleeps in the backend's `wait`.

use crate::backend::{Backend, OutDatagram, RecvBatch, Wakeup};
use crate::event::{Event, Message};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use moss_mesh::{Node as Core, PeerId, PeerInfo, Stats, Transmit};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Datagrams received or sent per batch.
pub const BATCH: usize = 64;

/// Host commands run per engine round before the engine turns to the
/// socket and seals what they queued. Small enough that the frames a burst
/// of publishes queues for one peer are sealed while they are few (the
/// node's per-session pending buffer is worked off from its front, so a
/// long backlog costs more per message); large enough to amortise a round.
const COMMANDS_PER_ROUND: usize = 256;

/// Receive batches per engine round. A flood keeps every batch full; the
/// round must still end so timers run, events reach the host and host
/// commands are served (an unbounded receive loop starved all three).
const RECV_BATCHES_PER_ROUND: usize = 8;

/// Placeholder address of an unused send view.
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// State the host handle reads without a round trip.
pub(crate) struct Shared {
    pub peer_count: AtomicUsize,
    pub parked: AtomicBool,
    pub stopped: AtomicBool,
    pub events_dropped: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub waker: Arc<dyn Wakeup>,
}

impl Shared {
    /// Wakes the engine if it is (about to be) asleep.
    pub fn nudge(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

/// Where the messages of a topic go.
pub(crate) enum Sink {
    /// A per-subscription channel.
    Channel(Sender<Message>),
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
    /// Publishes that found no subscribed peer when the engine ran them.
    pub publish_unrouted: u64,
    /// The telemetry snapshot (`{}` when telemetry is off).
    pub network: moss_mesh::NetworkSnapshot,
    /// Per-shard figures (one entry when the engine runs unsharded).
    pub shards: Vec<crate::shard::ShardStat>,
}

/// Host → engine commands.
pub(crate) enum Command {
    Publish {
        topic: String,
        data: Vec<u8>,
    },
    Subscribe {
        topic: String,
        sink: Sink,
    },
    Unsubscribe {
        topic: String,
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
    Stop,
}

pub(crate) struct Driver {
    pub core: Core,
    pub backend: Box<dyn Backend>,
    pub commands: Receiver<Command>,
    pub shared: Arc<Shared>,
    pub events: Sender<Event>,
    pub firehose: Sender<Message>,
    pub origin: Instant,
    pub topic_sinks: HashMap<String, Vec<Sender<Message>>>,
    pub firehose_topics: HashSet<String>,
    pub connect_waiters: HashMap<SocketAddr, Vec<Sender<Result<PeerId, String>>>>,
    pub send_dropped: u64,
    pub publish_unrouted: u64,
    /// The shard threads when `engine.shards` > 1 (the node is then in
    /// detached-transport mode and `backend` only sends handshakes).
    pub shards: Option<crate::shard::Shards>,
}

/// Shard → core items (datagrams' frames) the core works per round: like
/// the unsharded receive loop's 8 batches, bounded so timers, host
/// commands and event delivery keep their turn when the shards outpace
/// the core (each datagram can carry a dozen messages to verify).
const CORE_INBOUND_PER_ROUND: usize = 256;

impl Driver {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Runs until a stop command or the handle is dropped.
    pub fn run(mut self) {
        if let Some(shards) = self.shards.take() {
            return self.run_sharded(shards);
        }
        let mut batch = RecvBatch::new(BATCH);
        let mut out: Vec<Transmit> = Vec::with_capacity(BATCH);
        loop {
            if !self.drain_commands() {
                break;
            }
            // Receive everything that is ready, a batch at a time. Each
            // datagram is decrypted in place in the backend's own buffer
            // (uring's ring, mmsg's GRO scratch) or the batch slot
            // (portable): no copy between the kernel and the node.
            // True while the socket may hold more than this round took:
            // then the round does not sleep (mio is edge-triggered).
            let mut more = false;
            for _ in 0..RECV_BATCHES_PER_ROUND {
                let now = self.now();
                let core = &mut self.core;
                let n = match self.backend.recv_with(&mut batch, &mut |from, bytes| {
                    core.handle_datagram(now, from, bytes)
                }) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "receive failed");
                        0
                    }
                };
                more = n == BATCH;
                if !more {
                    break;
                }
                // Keep the send side moving during a receive flood.
                self.transmit(&mut out);
            }
            let now = self.now();
            if self.core.poll_timeout() <= now {
                self.core.handle_timeout(now);
            }
            self.transmit(&mut out);
            self.dispatch_events();
            // Sleep until input, a command or the next timer.
            if more {
                continue;
            }
            self.shared.parked.store(true, Ordering::SeqCst);
            if self.commands.is_empty() {
                let timeout = self.core.poll_timeout().saturating_sub(self.now());
                if let Err(e) = self.backend.wait(Some(timeout)) {
                    tracing::warn!(error = %e, "wait failed");
                }
            }
            self.shared.parked.store(false, Ordering::SeqCst);
        }
        self.core.shutdown();
        self.transmit(&mut out);
        self.dispatch_events();
        self.shared.peer_count.store(0, Ordering::SeqCst);
        self.shared.stopped.store(true, Ordering::SeqCst);
    }

    /// The core loop of a sharded engine: commands, frames and handshakes
    /// from the shards, timers; plaintext for the shards, handshakes out.
    fn run_sharded(mut self, shards: crate::shard::Shards) {
        let mut out: Vec<Transmit> = Vec::with_capacity(BATCH);
        self.shards = Some(shards);
        loop {
            if !self.drain_commands() {
                break;
            }
            let mut n = 0;
            while n < CORE_INBOUND_PER_ROUND {
                let Some(m) = self.shards.as_ref().and_then(|s| s.rx.try_recv().ok()) else {
                    break;
                };
                n += 1;
                let now = self.now();
                match m {
                    crate::shard::ToCore::Frames {
                        shard,
                        index,
                        from,
                        bytes,
                        verified,
                    } => {
                        self.core
                            .handle_plaintext_verified(now, index, from, &bytes, verified);
                        if let Some(s) = &self.shards {
                            s.give_back(shard, bytes);
                        }
                    }
                    crate::shard::ToCore::Handshake {
                        shard,
                        from,
                        mut bytes,
                    } => {
                        self.core
                            .handle_shard_datagram(now, from, shard, &mut bytes);
                        if let Some(s) = &self.shards {
                            s.give_back(shard, bytes);
                        }
                    }
                }
            }
            let now = self.now();
            if self.core.poll_timeout() <= now {
                self.core.handle_timeout(now);
            }
            self.transmit(&mut out);
            self.route_ops();
            self.dispatch_events();
            if n == CORE_INBOUND_PER_ROUND {
                continue;
            }
            let timeout = self.core.poll_timeout().saturating_sub(self.now());
            if let Some(s) = &self.shards {
                let mut sel = crossbeam_channel::Select::new();
                sel.recv(&self.commands);
                sel.recv(&s.rx);
                let _ = sel.ready_timeout(timeout);
            }
        }
        self.core.shutdown();
        self.transmit(&mut out);
        self.route_ops();
        if let Some(mut s) = self.shards.take() {
            s.stop();
        }
        self.dispatch_events();
        self.shared.peer_count.store(0, Ordering::SeqCst);
        self.shared.stopped.store(true, Ordering::SeqCst);
    }

    /// Hands the node's transport operations to their shards and wakes the
    /// shards that got any.
    fn route_ops(&mut self) {
        let Some(shards) = self.shards.as_ref() else {
            return;
        };
        // Drained buffers of sealed plaintext go back to the node's pool.
        while let Ok(b) = shards.recycle.try_recv() {
            self.core.recycle(b);
        }
        let mut touched = 0u32;
        let mut back = Vec::new();
        while let Some(op) = self.core.poll_transport() {
            if let Some(s) = shards.route(op, &mut |b| back.push(b)) {
                touched |= 1 << s;
            }
        }
        for b in back {
            self.core.recycle(b);
        }
        for s in 0..shards.len() {
            if touched & (1 << s) != 0 {
                shards.nudge(s);
            }
        }
    }

    /// Runs queued commands; false when the engine must stop.
    fn drain_commands(&mut self) -> bool {
        // Bounded per iteration so a publishing host cannot starve the socket.
        for _ in 0..COMMANDS_PER_ROUND {
            let cmd = match self.commands.try_recv() {
                Ok(c) => c,
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            };
            let now = self.now();
            match cmd {
                Command::Publish { topic, data } => {
                    if self.core.publish(now, &topic, &data).is_err() {
                        self.publish_unrouted += 1;
                    }
                }
                Command::Subscribe { topic, sink } => {
                    self.core.subscribe(&topic);
                    match sink {
                        Sink::Channel(tx) => self.topic_sinks.entry(topic).or_default().push(tx),
                        Sink::Firehose => {
                            self.firehose_topics.insert(topic);
                        }
                    }
                }
                Command::Unsubscribe { topic } => {
                    self.topic_sinks.remove(&topic);
                    self.firehose_topics.remove(&topic);
                    self.core.unsubscribe(&topic);
                }
                Command::Connect { addr, reply } => {
                    let connected = self.core.peers().into_iter().find(|p| p.addr == addr);
                    match (connected, reply) {
                        (Some(p), Some(r)) => {
                            let _ = r.send(Ok(p.peer));
                        }
                        (Some(_), None) => {}
                        (None, reply) => {
                            if let Some(r) = reply {
                                self.connect_waiters.entry(addr).or_default().push(r);
                            }
                            self.core.connect(addr);
                        }
                    }
                }
                Command::Snapshot(reply) => {
                    let mut stats = self.core.stats().clone();
                    let mut send_dropped = self.send_dropped;
                    let shards = match &self.shards {
                        Some(s) => {
                            let (per, total, dropped) = s.report();
                            stats.merge(&total);
                            send_dropped += dropped;
                            per
                        }
                        None => vec![crate::shard::ShardStat {
                            shard: 0,
                            datagrams_in: stats.datagrams_in,
                            datagrams_out: stats.datagrams_out,
                            sessions: self.core.session_count(),
                            ..Default::default()
                        }],
                    };
                    let _ = reply.send(Snapshot {
                        stats,
                        peers: self.core.peers(),
                        subscriptions: self.core.subscriptions().map(String::from).collect(),
                        sessions: self.core.session_count(),
                        send_dropped,
                        publish_unrouted: self.publish_unrouted,
                        network: self.core.network_stats(),
                        shards,
                    });
                }
                Command::SetAppScore(f) => self.core.set_app_score(f),
                Command::Chain { limit, reply } => {
                    let _ = reply.send(self.core.telemetry_chain(limit));
                }
                Command::Stop => return false,
            }
        }
        true
    }

    /// Sends everything the node has queued, a batch at a time.
    fn transmit(&mut self, out: &mut Vec<Transmit>) {
        loop {
            while out.len() < BATCH {
                match self.core.poll_transmit() {
                    Some(t) => out.push(t),
                    None => break,
                }
            }
            if out.is_empty() {
                return;
            }
            let full = out.len() == BATCH;
            // Views into the node's buffers, on the stack: no per-batch
            // allocation.
            let mut views = [OutDatagram {
                to: UNSPECIFIED,
                bytes: &[],
            }; BATCH];
            for (v, t) in views.iter_mut().zip(out.iter()) {
                *v = OutDatagram {
                    to: t.to,
                    bytes: &t.bytes,
                };
            }
            let sent = match self.backend.send_batch(&views[..out.len()]) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "send failed");
                    0
                }
            };
            self.send_dropped += (out.len() - sent.min(out.len())) as u64;
            for t in out.drain(..) {
                self.core.recycle(t.bytes);
            }
            if !full {
                return;
            }
        }
    }

    fn emit(&self, e: Event) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(e) {
            self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dispatch_events(&mut self) {
        while let Some(e) = self.core.poll_event() {
            match e {
                moss_mesh::Event::PeerConnected { peer, addr } => {
                    if let Some(ws) = self.connect_waiters.remove(&addr) {
                        for w in ws {
                            let _ = w.send(Ok(peer));
                        }
                    }
                    self.emit(Event::PeerJoined { peer, addr });
                }
                moss_mesh::Event::PeerDisconnected { peer, addr, reason } => {
                    self.emit(Event::PeerLeft {
                        peer,
                        addr,
                        reason: reason.as_str(),
                    });
                }
                moss_mesh::Event::ConnectFailed { addr, reason } => {
                    if let Some(ws) = self.connect_waiters.remove(&addr) {
                        for w in ws {
                            let _ = w.send(Err(reason.clone()));
                        }
                    }
                }
                moss_mesh::Event::Message(m) => self.route(m),
            }
        }
        self.shared
            .peer_count
            .store(self.core.peer_count(), Ordering::SeqCst);
    }

    fn route(&mut self, m: moss_mesh::Message) {
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
        if let Some(sinks) = self
            .topic_sinks
            .get_mut(pending.as_ref().map_or("", |m| &m.topic))
        {
            let last = sinks.len().saturating_sub(1);
            let mut i = 0;
            sinks.retain(|tx| {
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
                        self.shared.messages_dropped.fetch_add(1, Ordering::Relaxed);
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
                    self.core.unsubscribe(&topic);
                }
            }
        }
    }
}
