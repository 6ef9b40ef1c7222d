//! The sans-IO node: datagrams, time and commands in; datagrams, timer
//! deadlines and events out. No sockets, threads or clocks of its own.
//!
//! The node's state is split by ownership: the [`SessionTable`] (slots and
//! their indices), the [`Handshaker`] (static key, handshake budget), the
//! [`Pubsub`] (router, subscriptions, scratch buffers) and the
//! [`Transport`] (the session keys, local or on engine shards). Inputs
//! arrive through one path ([`Node::handle`], see `input.rs`).

use crate::config::{Config, ConfigError};
use crate::event::{DisconnectReason, Event};
use crate::handshake::Handshaker;
use crate::path::Path;
use crate::pubsub::Pubsub;
use crate::reach::Reachability;
use crate::session::State;
use crate::shard::{TransportOp, MAX_SHARDS};
use crate::stats::{DropReason, Stats};
use crate::table::SessionTable;
use crate::telemetry::NodeTelemetry;
use crate::transport::{Outbox, Remote, Transmit, Transport};
use crate::wire::Frame;
use crate::Time;
use moss_crypto::{Identity, MeshKeys, PeerId};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Period of the node's housekeeping tick.
pub const TICK: Duration = Duration::from_millis(100);
pub use crate::liveness::{IDLE_TIMEOUT, KEEPALIVE};
/// First handshake retransmission delay (doubles per attempt).
pub const HANDSHAKE_RETRY: Duration = Duration::from_millis(500);
/// Most handshakes in flight at once.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// Handshake initiations a node answers in a burst.
pub const HANDSHAKE_BURST: u32 = 512;
/// Handshake initiations a node answers per second, sustained.
pub const HANDSHAKE_RATE: u32 = 2000;
/// Longest back-off between dials of a lost static peer.
pub const MAX_REDIAL: Duration = Duration::from_secs(30);

/// A peer as `peers()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Authenticated identity.
    pub peer: PeerId,
    /// Current path (compares equal to a `SocketAddr` for UDP).
    pub addr: Path,
    /// Topics it subscribed to.
    pub topics: Vec<String>,
    /// Our address as that peer observed it.
    pub observed: Option<SocketAddr>,
    /// True if we dialled the peer.
    pub outbound: bool,
}

/// Why [`Node::detach_transport`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DetachError {
    /// The shard count is 0 or above [`MAX_SHARDS`].
    #[error("shard count must be 1..={max}, got {got}", max = MAX_SHARDS)]
    BadShardCount {
        /// The count asked for.
        got: usize,
    },
    /// Sessions exist already; detach before any traffic.
    #[error("transport can only be detached before the first session")]
    SessionsExist,
}

struct StaticPeer {
    path: Path,
    next_dial: Time,
    backoff: Duration,
}

/// A Moss node as a deterministic state machine.
pub struct Node {
    pub(crate) cfg: Config,
    pub(crate) identity: Identity,
    pub(crate) keys: MeshKeys,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) table: SessionTable,
    pub(crate) handshaker: Handshaker,
    pub(crate) pubsub: Pubsub,
    pub(crate) transport: Transport,
    pub(crate) outbox: Outbox,
    pub(crate) stats: Stats,
    pub(crate) events: VecDeque<Event>,
    pub(crate) telemetry: NodeTelemetry,
    pub(crate) reach: Reachability,
    pub(crate) nat: crate::nat::NatState,
    pub(crate) relay: crate::relay::RelayState,
    static_peers: Vec<StaticPeer>,
    next_tick: Time,
    pub(crate) now: Time,
}

impl Node {
    /// Creates a node. `seed` drives every random choice (session indices,
    /// ephemeral keys, padding), so equal seeds and inputs replay exactly.
    /// Fails only on an invalid `gossipsub` block, which
    /// [`Config::validate`] (and [`Config::from_json`]) rule out.
    pub fn new(
        cfg: Config,
        identity: Identity,
        mesh_id: &str,
        psk: Option<&[u8; 32]>,
        seed: [u8; 32],
        now: Time,
    ) -> Result<Self, ConfigError> {
        let keys = MeshKeys::derive(mesh_id, psk);
        let mut rng = ChaCha20Rng::from_seed(seed);
        // Sequence numbers start at a random point so ids never repeat
        // across restarts of the same identity.
        let seq = rng.next_u64() >> 16;
        let telemetry = NodeTelemetry::new(&cfg.telemetry, &identity);
        let pubsub = Pubsub::new(&cfg, seq, telemetry.is_enabled(), now, &mut rng, seed)?;
        let mut cookie_seed = [0u8; 32];
        rng.fill_bytes(&mut cookie_seed);
        let relay = crate::relay::RelayState::new(&cfg, now);
        let mut node = Self {
            handshaker: Handshaker::new(&identity, &keys, cookie_seed, now),
            transport: Transport::local(&keys),
            cfg,
            identity,
            keys,
            rng,
            table: SessionTable::default(),
            pubsub,
            outbox: Outbox::default(),
            stats: Stats::default(),
            events: VecDeque::new(),
            telemetry,
            reach: Reachability::default(),
            nat: Default::default(),
            relay,
            static_peers: Vec::new(),
            next_tick: now,
            now,
        };
        // Capabilities (we speak the NAT and relay frames): announced to
        // every peer with the subscriptions, but no gossip topics: the
        // router never meshes or scores them.
        for cap in crate::session::CAPABILITIES {
            node.pubsub.subscriptions.insert(cap.to_string());
        }
        Ok(node)
    }

    /// Switches to detached transport over `shards` shards: established
    /// sessions' keys leave the node ([`Node::poll_transport`]), the
    /// driver's [`crate::shard::SessionShard`]s open and seal their
    /// datagrams and feed the plaintext back ([`crate::Input::Plaintext`]).
    /// Only before the first session.
    pub fn detach_transport(&mut self, shards: usize) -> Result<(), DetachError> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(DetachError::BadShardCount { got: shards });
        }
        if !self.table.sessions.is_empty() {
            return Err(DetachError::SessionsExist);
        }
        self.transport = Transport::Remote(Remote::new(shards, &self.keys));
        Ok(())
    }

    /// The shard count when transport is detached.
    pub fn detached_shards(&self) -> Option<usize> {
        self.transport.shards()
    }

    /// Next operation for the shards (detached transport only). Pending
    /// frames are handed out lazily here, like [`Node::poll_transmit`].
    pub fn poll_transport(&mut self) -> Option<TransportOp> {
        self.transport.shards()?;
        if !self.transport.has_ops() {
            self.flush();
        }
        self.transport.pop_op()
    }

    /// This node's peer id.
    pub fn public_key(&self) -> PeerId {
        self.identity.public_key()
    }

    /// The keys derived from mesh id and PSK (infohash, beacon key, …).
    pub fn mesh_keys(&self) -> &MeshKeys {
        &self.keys
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Topics the application subscribed to (internal `moss/` topics,
    /// such as telemetry's, are not listed).
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.pubsub
            .subscriptions
            .iter()
            .map(|s| s.as_str())
            .filter(|t| *t != crate::telemetry::TELEMETRY_TOPIC && !crate::pubsub::is_capability(t))
    }

    /// Established peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let t = &self.table;
        let mut v: Vec<PeerInfo> = t
            .by_peer
            .values()
            .filter_map(|&i| t.get(i))
            .filter_map(|s| {
                s.established().map(|e| PeerInfo {
                    peer: e.peer,
                    addr: s.path,
                    topics: e
                        .topics
                        .iter()
                        .filter(|t| !crate::pubsub::is_capability(t))
                        .map(|t| t.to_string())
                        .collect(),
                    observed: e.observed,
                    outbound: e.initiator,
                })
            })
            .collect();
        v.sort_by_key(|p| p.peer);
        v
    }

    /// Whether unsolicited traffic was proven to reach this node, and the
    /// NAT class it reports ([`Reachability`]).
    pub fn reachability(&self) -> &Reachability {
        &self.reach
    }

    /// Number of established peers.
    pub fn peer_count(&self) -> usize {
        self.table.by_peer.len()
    }

    /// Number of session slots, established or handshaking.
    pub fn session_count(&self) -> usize {
        self.table.sessions.len()
    }

    /// Adds a peer that is dialled now and re-dialled whenever lost.
    pub fn add_static_peer(&mut self, addr: SocketAddr) {
        let path = Path::Udp(addr);
        if !self.static_peers.iter().any(|p| p.path == path) {
            self.static_peers.push(StaticPeer {
                path,
                next_dial: self.now,
                backoff: Duration::from_secs(1),
            });
        }
    }

    /// Returns a transmit buffer for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.outbox.recycle(buf);
    }

    /// Next datagram to send. Pending frames are sealed lazily here, so
    /// frames produced by a whole batch of inputs share datagrams (the one
    /// piece of work a `poll_*` does; no other state changes).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.outbox.is_empty() {
            self.flush();
        }
        self.outbox.pop()
    }

    /// Next event. Draining events changes nothing else: telemetry deltas
    /// were merged when they arrived.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Time {
        self.next_tick
    }

    /// Queues a datagram to `to` (handshakes, retransmissions).
    pub(crate) fn emit(&mut self, to: Path, bytes: Vec<u8>) {
        if let Path::Relay { via, session } = to {
            return self.relay_emit(via, session, bytes);
        }
        self.reach.note_sent(to);
        self.outbox.emit(&mut self.stats, to, bytes);
    }

    pub(crate) fn drop_input(&mut self, r: DropReason) {
        self.stats.drops.add(r);
    }

    /// Advances timers: retransmissions, keepalives, expiry, re-dials.
    pub(crate) fn on_timeout(&mut self, now: Time) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK;
        let hs_timeout = Duration::from_secs(u64::from(self.cfg.security.handshake_timeout_sec));
        let mut expired = Vec::new();
        let mut retransmit = Vec::new();
        let mut keepalive = Vec::new();
        let mut retired = Vec::new();
        let mut silent = Vec::new();
        for (&idx, s) in self.table.sessions.iter_mut() {
            match &mut s.state {
                State::Initiating(p) | State::Responding(p) => {
                    if now.saturating_sub(p.created) >= hs_timeout {
                        expired.push((idx, None));
                    } else if now >= p.next_retry {
                        p.attempts += 1;
                        p.next_retry =
                            now + HANDSHAKE_RETRY * 2u32.saturating_pow(p.attempts.min(6));
                        retransmit.push((s.path, p.last_datagram.clone()));
                    }
                }
                State::Established(e) => {
                    if let Some(at) = e.retired {
                        if at.reached(now) {
                            retired.push(idx);
                        }
                    } else if e.unconfirmed {
                        // An IK responder's session the initiator never used.
                        if e.began.since(now) >= hs_timeout {
                            retired.push(idx);
                        }
                    } else if s.last_recv.since(now) >= IDLE_TIMEOUT {
                        expired.push((idx, Some(e.peer)));
                    } else {
                        e.reassembly.expire(now);
                        if s.last_send.since(now) >= KEEPALIVE {
                            keepalive.push(idx);
                        }
                        if s.last_recv.since(now) >= crate::liveness::SILENCE {
                            silent.push(idx);
                        }
                    }
                }
            }
        }
        // The table is a hash map: work in index order, so equal seeds and
        // inputs give the same output order (and draw the RNG alike).
        expired.sort_unstable_by_key(|e| e.0);
        retired.sort_unstable();
        retransmit.sort_unstable();
        keepalive.sort_unstable();
        for (idx, peer) in expired {
            match peer {
                Some(_) => self.remove_session(idx, Some(DisconnectReason::Timeout)),
                None => {
                    let dial = self
                        .table
                        .get(idx)
                        .and_then(|s| matches!(s.state, State::Initiating(_)).then_some(s.path));
                    self.fail_handshake(idx, "handshake timed out");
                    if let Some(path) = dial {
                        // Nobody answered: a supernode may reach the peer.
                        self.relay_dial_failed(path);
                    }
                }
            }
        }
        for idx in retired {
            // A loser of a duplicate is no peer's session (no event); one
            // retired by the peer's CLOSE still is when nothing replaced it.
            self.remove_session(idx, Some(DisconnectReason::Closed));
        }
        for (to, bytes) in retransmit {
            self.emit(to, bytes);
        }
        for idx in keepalive {
            // Pending frames, or an empty sealed datagram, prove liveness.
            self.seal_and_send(idx, true);
        }
        silent.sort_unstable();
        for idx in silent {
            // The peer may have restarted and lost our hint: handshake again.
            self.probe(idx, crate::liveness::SILENCE);
        }
        for idx in self.ik_overdue(now) {
            self.fall_back_to_xx(idx);
        }
        self.handshaker.expire(now);
        let rng = &mut self.rng;
        self.handshaker.cookies.rotate(now, || {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        });
        self.redial_static(now);
        self.pubsub_tick(now);
        self.nat_tick(now);
        self.relay_tick(now);
        self.telemetry_tick();
    }

    /// A handshake in slot `idx` failed: counted, the slot removed, and a
    /// dial of ours reported ([`Event::ConnectFailed`]), so a driver
    /// waiting on it learns at once.
    pub(crate) fn fail_handshake(&mut self, idx: u32, reason: &str) {
        self.stats.handshakes_failed += 1;
        if let Some(s) = self.table.get(idx) {
            if matches!(&s.state, State::Initiating(p) if !p.probe) {
                let addr = s.path;
                self.events.push_back(Event::ConnectFailed {
                    addr,
                    reason: reason.into(),
                });
            }
        }
        self.remove_session(idx, None);
    }

    fn redial_static(&mut self, now: Time) {
        let mut dial = Vec::new();
        for p in &mut self.static_peers {
            if self.table.by_path.contains_key(&p.path) {
                p.backoff = Duration::from_secs(1);
                continue;
            }
            if now >= p.next_dial {
                dial.push(p.path);
                p.next_dial = now + p.backoff;
                p.backoff = (p.backoff * 2).min(MAX_REDIAL);
            }
        }
        for path in dial {
            self.connect_path(path);
        }
    }

    /// Removes a session slot; `reason` emits a disconnect event when it was
    /// the peer's established session.
    pub(crate) fn remove_session(&mut self, idx: u32, reason: Option<DisconnectReason>) {
        let Some(s) = self.table.remove(idx) else {
            return;
        };
        self.reach.on_settled(idx, None, self.now);
        if let State::Established(e) = &s.state {
            self.transport.remove(idx);
            if self.table.by_peer.get(&e.peer) == Some(&idx) {
                self.table.by_peer.remove(&e.peer);
                self.pubsub_peer_down(&e.peer);
                self.relay_peer_down(e.peer, s.path);
                if let Some(reason) = reason {
                    self.events.push_back(Event::PeerDisconnected {
                        peer: e.peer,
                        addr: s.path,
                        reason,
                    });
                }
            }
        }
    }

    /// Closes every session (peers learn at once) and forgets them.
    pub fn shutdown(&mut self) {
        if self.is_supernode() {
            // Peers hear the signed revocation before the sessions close.
            self.revoke_supernode("shutdown".into());
        }
        for idx in self.table.peer_indices() {
            self.queue_frame(idx, &Frame::Close(0));
            self.seal_and_send(idx, false);
        }
        let all: Vec<u32> = self.table.sessions.keys().copied().collect();
        for idx in all {
            self.remove_session(idx, Some(DisconnectReason::Shutdown));
        }
        self.static_peers.clear();
    }

    /// The host's channel on `path` is gone (a WebRTC DataChannel closed):
    /// the session on it ends now, as if the peer had sent a close, rather
    /// than after [`IDLE_TIMEOUT`]. Nothing is sent.
    pub fn close_path(&mut self, path: Path) {
        if let Some(idx) = self.table.by_path(&path) {
            self.remove_session(idx, Some(DisconnectReason::Closed));
        }
    }

    /// Makes room for `len` more bytes in session `idx`'s pending datagram
    /// (sealing what is there when they would not fit) and returns it; the
    /// session is marked for the next flush. `None` for a slot that is not
    /// established, or retired.
    pub(crate) fn pending_room(&mut self, idx: u32, len: usize) -> Option<&mut Vec<u8>> {
        let e = self.table.established(idx)?;
        if e.retired.is_some() {
            // A retired duplicate sends nothing; the peer's session is the
            // one that won.
            return None;
        }
        let full = e.pending.len() + len > crate::wire::MAX_PLAINTEXT;
        if full {
            self.seal_and_send(idx, false);
        }
        self.table.mark_dirty(idx);
        let e = self.table.established_mut(idx)?;
        self.outbox.fill(&mut e.pending);
        Some(&mut e.pending)
    }

    /// Appends an encoded frame to a session's pending datagram, sealing the
    /// pending one first when the frame would not fit.
    #[cfg(feature = "adversary")]
    pub(crate) fn queue_frame_bytes(&mut self, idx: u32, frame: &[u8]) {
        if let Some(p) = self.pending_room(idx, frame.len()) {
            p.extend_from_slice(frame);
        }
    }

    /// Encodes one frame straight into a session's pending datagram.
    pub(crate) fn queue_frame(&mut self, idx: u32, frame: &Frame) {
        if let Some(p) = self.pending_room(idx, frame.encoded_len()) {
            frame.encode(p);
        }
    }

    fn flush(&mut self) {
        // Messages delivered early are checked (and forwarded) first.
        self.check_deferred();
        let (out, stats) = (&mut self.outbox, &mut self.stats);
        self.transport.flush_probes(out, stats, &mut self.table);
        let dirty = self.table.take_dirty();
        for &idx in &dirty {
            self.seal_and_send(idx, false);
        }
        self.table.restore_dirty(dirty);
    }

    /// Seals a session's pending frames into one datagram through the
    /// transport; with `allow_empty` an empty keepalive is sent too.
    pub(crate) fn seal_and_send(&mut self, idx: u32, allow_empty: bool) {
        let Some(s) = self.table.sessions.get_mut(&idx) else {
            return;
        };
        self.transport.seal(
            &mut self.outbox,
            &mut self.stats,
            idx,
            s,
            allow_empty,
            self.now,
        );
    }

    /// A fresh local session index (owned by the current shard when
    /// sharded).
    pub(crate) fn random_index(&mut self) -> u32 {
        let t = &self.transport;
        self.table.fresh_index(&mut self.rng, |r| t.owned_index(r))
    }
}
