//! The engine thread: owns the sans-IO node and its transport (one
//! backend, or shard threads), and moves batches between them. Commands
//! from the host arrive over a bounded channel; the host's side of things
//! (sinks, waiters, shared counters) is [`crate::host::Host`]. One run loop
//! serves both transports: per round, host commands, received input, due
//! timers, output, events; then it sleeps until input, a command or the
//! next timer.

use crate::backend::{Forward, RecvBatch, FORWARD_CHUNK};
pub(crate) use crate::host::{Command, Host, Shared, Snapshot};
use crate::io::Transport;
use crate::shard::ToCore;
use crate::spin::Spin;
use crossbeam_channel::Receiver;
use moss_crypto::scramble::HEAD_LEN;
use moss_mesh::{Input, Node as Core, Path, Transmit};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
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

/// Shard → core items (datagrams' frames) the core works per round: like
/// the unsharded receive loop's 8 batches, bounded so timers, host
/// commands and event delivery keep their turn when the shards outpace
/// the core (each datagram can carry a dozen messages to verify).
const CORE_INBOUND_PER_ROUND: usize = 256;

/// A round's working buffers: the receive batch, the transmit batch and
/// the busy-poll state. A thread reuses one for every round and every node
/// it drives (both batches are empty between rounds).
pub(crate) struct Scratch {
    batch: RecvBatch,
    out: Vec<Transmit>,
    spin: Spin,
}

impl Scratch {
    /// Buffers for [`BATCH`] datagrams; busy-polling up to `busy_poll_us`.
    pub fn new(busy_poll_us: u32) -> Self {
        Self {
            batch: RecvBatch::new(BATCH),
            out: Vec::with_capacity(BATCH),
            spin: Spin::new(busy_poll_us),
        }
    }
}

pub(crate) struct Driver {
    pub core: Core,
    pub transport: Transport,
    pub commands: Receiver<Command>,
    pub host: Host,
    pub origin: Instant,
    pub send_dropped: u64,
    /// True when the current round took input or ran a command.
    pub worked: bool,
    /// The TCP carrier (with `transport.tcp_enabled`).
    pub tcp: Option<crate::tcp::Carrier>,
    /// WebRTC DataChannel peers (config `webrtc.enabled`).
    pub webrtc: Option<crate::webrtc::Bridge>,
    /// Birthday-spray sockets (NAT traversal).
    pub spray: crate::spray::Spray,
}

impl Driver {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Runs until a stop command or the handle is dropped.
    pub fn run(mut self) {
        let mut scratch = Scratch::new(self.core.config().engine.busy_poll_us);
        while let Some(more) = self.round(&mut scratch) {
            // Poll again for a while after work instead of parking: a
            // parked thread's wake-up is most of a hop's latency here.
            if !more && !scratch.spin.keep_polling() {
                self.sleep();
            }
        }
        self.finish(&mut scratch);
    }

    /// One engine round: host commands, received input, due timers,
    /// output, events. `None` when the engine must stop (then call
    /// [`Driver::finish`]); otherwise true while more input may wait than
    /// the round took, so the caller must not sleep (mio is
    /// edge-triggered). A [`crate::shared`] engine calls this for each of
    /// its nodes; [`Driver::run`] for its one.
    pub(crate) fn round(&mut self, scratch: &mut Scratch) -> Option<bool> {
        self.worked = false;
        if !self.drain_commands() {
            return None;
        }
        let Scratch { batch, out, spin } = scratch;
        let mut more = self.receive(batch, out);
        let now = self.now();
        // Deliveries first: a message from its origin is handed over
        // before its signature check, which runs with the next
        // transmit (it must pass before the message is forwarded).
        self.host.dispatch(&mut self.core, self.tcp.as_mut(), now);
        if let Some(tcp) = &mut self.tcp {
            more |= tcp.receive(&mut self.core, now);
        }
        if let Some(w) = &mut self.webrtc {
            more |= w.receive(&mut self.core, now);
        }
        more |= self.spray.receive(&mut self.core, now);
        if self.core.poll_timeout() <= now {
            self.core.handle(now, Input::Timeout);
            self.spray.run(&mut self.core, now);
        }
        self.transmit(out);
        self.route_ops();
        self.host.dispatch(&mut self.core, self.tcp.as_mut(), now);
        if self.worked {
            spin.worked();
        }
        Some(more)
    }

    /// Stops the node: peers are told, the last events delivered, the
    /// host's view marked stopped.
    pub(crate) fn finish(mut self, scratch: &mut Scratch) {
        let out = &mut scratch.out;
        self.core.shutdown();
        self.transmit(out);
        self.route_ops();
        if let Transport::Sharded { shards, .. } = &mut self.transport {
            shards.stop();
        }
        let now = self.now();
        self.host.dispatch(&mut self.core, None, now);
        self.host.shared.mark_stopped();
    }

    /// How long until this node's next timer (zero when one is due).
    pub(crate) fn until_timer(&self) -> Duration {
        self.core.poll_timeout().saturating_sub(self.now())
    }

    /// Takes a round's input; true if more may be waiting.
    fn receive(&mut self, batch: &mut RecvBatch, out: &mut Vec<Transmit>) -> bool {
        match &mut self.transport {
            Transport::Direct(_) => self.receive_direct(batch, out),
            Transport::Sharded { .. } => self.receive_from_shards(),
        }
    }

    /// Receives everything that is ready, a batch at a time. Each datagram
    /// is decrypted in place in the backend's own buffer (uring's ring,
    /// mmsg's GRO scratch) or the batch slot (portable): no copy between
    /// the kernel and the node.
    fn receive_direct(&mut self, batch: &mut RecvBatch, out: &mut Vec<Transmit>) -> bool {
        for _ in 0..RECV_BATCHES_PER_ROUND {
            let now = self.now();
            let Transport::Direct(backend) = &mut self.transport else {
                return false;
            };
            // Relayed datagrams leave from the receive buffer inside this
            // call, batched, uncopied.
            let mut fwd = CoreForward {
                core: &mut self.core,
                now,
                heads: [None; FORWARD_CHUNK],
            };
            let n = match backend.recv_forward_batch(batch, &mut fwd) {
                Ok(r) => r.datagrams,
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed");
                    0
                }
            };
            if n > 0 {
                self.worked = true;
            }
            if n < BATCH {
                return false;
            }
            // Keep the send side moving during a receive flood.
            self.transmit(out);
        }
        true
    }

    /// Works the frames and handshake datagrams the shards sent.
    fn receive_from_shards(&mut self) -> bool {
        for _ in 0..CORE_INBOUND_PER_ROUND {
            let Some(shards) = self.transport.shards() else {
                return false;
            };
            let Ok(m) = shards.rx.try_recv() else {
                return false;
            };
            self.worked = true;
            let now = self.now();
            let (shard, bytes) = match m {
                ToCore::Frames {
                    shard,
                    index,
                    from,
                    bytes,
                    verified,
                } => {
                    let input = Input::Plaintext {
                        index,
                        from: Path::Udp(from),
                        plain: &bytes,
                        verified,
                    };
                    self.core.handle(now, input);
                    (shard, bytes)
                }
                ToCore::Handshake {
                    shard,
                    from,
                    mut bytes,
                } => {
                    let input = Input::ShardDatagram {
                        from: Path::Udp(from),
                        shard,
                        bytes: &mut bytes,
                    };
                    self.core.handle(now, input);
                    (shard, bytes)
                }
            };
            if let Some(s) = self.transport.shards() {
                s.give_back(shard, bytes);
            }
        }
        true
    }

    /// Sleeps until input, a command or the next timer.
    fn sleep(&mut self) {
        let timeout = self.until_timer();
        match &mut self.transport {
            Transport::Direct(backend) => {
                self.host.shared.parked.store(true, Ordering::SeqCst);
                if self.commands.is_empty() {
                    if let Err(e) = backend.wait(Some(timeout)) {
                        tracing::warn!(error = %e, "wait failed");
                    }
                }
                self.host.shared.parked.store(false, Ordering::SeqCst);
            }
            Transport::Sharded { shards, .. } => {
                let mut sel = crossbeam_channel::Select::new();
                sel.recv(&self.commands);
                sel.recv(&shards.rx);
                if let Some(tcp) = self.tcp.as_ref().and_then(|t| t.wake_channel()) {
                    sel.recv(tcp);
                }
                if let Some(spray) = self.spray.wake_channel() {
                    sel.recv(spray);
                }
                let _ = sel.ready_timeout(timeout);
            }
        }
    }

    /// Hands the node's transport operations to their shards and wakes the
    /// shards that got any (sharded transport only).
    fn route_ops(&mut self) {
        let Transport::Sharded { shards, .. } = &self.transport else {
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
            self.worked = true;
            let now = self.now();
            let core = &mut self.core;
            match cmd {
                Command::Publish { buf, topic_len } => {
                    let (topic, data) = buf.split_at(topic_len.min(buf.len()));
                    // The handle wrote a `&str` there: always UTF-8.
                    let routed = std::str::from_utf8(topic)
                        .is_ok_and(|t| core.publish(now, t, data).is_ok());
                    if !routed {
                        self.host.publish_unrouted += 1;
                    }
                    self.host.shared.publish_buffers.give(buf);
                }
                Command::Subscribe { topic, sink } => self.host.subscribe(core, topic, sink),
                Command::Unsubscribe { topic } => self.host.unsubscribe(core, &topic),
                Command::DropSubscription { topic, id } => {
                    self.host.drop_subscription(core, &topic, id)
                }
                Command::Connect { addr, reply } => self.host.connect(core, addr, reply),
                Command::Snapshot(reply) => {
                    let _ = reply.send(self.snapshot());
                }
                Command::SetAppScore(f) => core.set_app_score(f),
                Command::Chain { limit, reply } => {
                    let _ = reply.send(core.telemetry_chain(limit));
                }
                Command::PortMapped(a) => core.set_port_mapping(a),
                Command::Stop => return false,
            }
        }
        true
    }

    /// The figures a snapshot command asks for.
    fn snapshot(&self) -> Snapshot {
        let mut stats = self.core.stats().clone();
        let mut send_dropped = self.send_dropped;
        let shards = match self.transport.shards() {
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
        Snapshot {
            stats,
            peers: self.core.peers(),
            subscriptions: self.core.subscriptions().map(String::from).collect(),
            sessions: self.core.session_count(),
            send_dropped,
            send_drops: self.transport.send_drops(),
            publish_unrouted: self.host.publish_unrouted,
            network: self.core.network_stats(),
            shards,
            nat_type: self.core.reachability().nat_type(),
            punched: self
                .core
                .peers()
                .into_iter()
                .map(|p| p.peer)
                .filter(|p| self.core.punch_state(p) == Some(moss_mesh::nat::PunchState::Punched))
                .collect(),
            punch_ms: self
                .core
                .peers()
                .into_iter()
                .filter_map(|p| {
                    let ms = self.core.punch_time(&p.peer)?.as_millis() as u64;
                    Some((p.peer, ms, self.core.punch_offers(&p.peer)))
                })
                .collect(),
            spray: self.spray.stats(),
            supernode: self.core.is_supernode(),
        }
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
            self.spray.send(out, self.origin.elapsed());
            if let Some(w) = &mut self.webrtc {
                w.send(out);
            }
            if let Some(tcp) = &mut self.tcp {
                tcp.send(out, &mut self.core);
            }
            let sent = self.transport.send(out);
            self.send_dropped += (out.len() - sent.min(out.len())) as u64;
            for t in out.drain(..) {
                self.core.recycle(t.bytes);
            }
            if !full {
                return;
            }
        }
    }
}

/// The 1-shard node's receive chunks: every head unmasked in one
/// lane-wise pass, then each datagram handed to the core, which returns
/// the destination of a relayed one.
struct CoreForward<'a> {
    core: &'a mut Core,
    now: Duration,
    heads: [Option<[u8; HEAD_LEN]>; FORWARD_CHUNK],
}

impl Forward for CoreForward<'_> {
    fn chunk(&mut self, datagrams: &[&[u8]]) {
        self.core.peek_heads(datagrams, &mut self.heads);
    }

    fn datagram(&mut self, i: usize, from: SocketAddr, bytes: &mut [u8]) -> Option<SocketAddr> {
        match self.heads.get(i) {
            Some(&head) => self
                .core
                .handle_datagram_forwarding_peeked(self.now, from, bytes, head),
            None => self.core.handle_datagram_forwarding(self.now, from, bytes),
        }
    }
}
