//! The sans-IO node: datagrams, time and commands in; datagrams, timer
//! deadlines and events out. No sockets, threads or clocks of its own.

use crate::config::Config;
use crate::event::{DisconnectReason, Event};
use crate::session::{Session, Stamp, State};
use crate::shard::{TransportOp, MAX_SHARDS};
use crate::stats::{DropReason, Stats};
use crate::wire::{Frame, Head, MAX_DATAGRAM};
use crate::Time;
use moss_crypto::scramble::{HEAD_LEN, MIN_DATAGRAM};
use moss_crypto::transport::TAG_LEN;
use moss_crypto::{Identity, MeshKeys, PeerId, Scrambler};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// Period of the node's housekeeping tick.
pub const TICK: Duration = Duration::from_millis(100);
/// A session with no authenticated input for this long is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// An established session with no output for this long gets a keepalive.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
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

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes (return the buffer with [`Node::recycle`] to avoid allocation).
    pub bytes: Vec<u8>,
}

/// A peer as `peers()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Authenticated identity.
    pub peer: PeerId,
    /// Current address.
    pub addr: SocketAddr,
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

/// Detached-transport bookkeeping: where new sessions go and what the
/// shards must do.
struct Detached {
    shards: usize,
    /// Owner of the next index `random_index` draws.
    next_owner: usize,
    /// Round-robin owner of the next outbound dial.
    next_dial: usize,
    ops: VecDeque<TransportOp>,
}

struct StaticPeer {
    addr: SocketAddr,
    next_dial: Time,
    backoff: Duration,
}

/// A Moss node as a deterministic state machine.
pub struct Node {
    pub(crate) cfg: Config,
    pub(crate) identity: Identity,
    pub(crate) keys: MeshKeys,
    pub(crate) scrambler: Scrambler,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) sessions: HashMap<u32, Session>,
    pub(crate) by_addr: HashMap<SocketAddr, u32>,
    pub(crate) by_peer: HashMap<PeerId, u32>,
    pub(crate) subscriptions: BTreeSet<String>,
    pub(crate) seq: u64,
    pub(crate) gossip: crate::pubsub::Gossip,
    pub(crate) stats: Stats,
    transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    free_bufs: Vec<Vec<u8>>,
    static_peers: Vec<StaticPeer>,
    pub(crate) dirty: Vec<u32>,
    next_tick: Time,
    pub(crate) now: Time,
    pub(crate) telemetry: moss_telemetry::Telemetry,
    pub(crate) local_static: moss_crypto::LocalStatic,
    pub(crate) handshake_budget: crate::session::TokenBucket,
    pub(crate) telemetry_bytes_seen: (u64, u64),
    pub(crate) unix_origin: u64,
    detached: Option<Detached>,
}

impl Node {
    /// Creates a node. `seed` drives every random choice (session indices,
    /// ephemeral keys, padding), so equal seeds and inputs replay exactly.
    pub fn new(
        cfg: Config,
        identity: Identity,
        mesh_id: &str,
        psk: Option<&[u8; 32]>,
        seed: [u8; 32],
        now: Time,
    ) -> Self {
        let keys = MeshKeys::derive(mesh_id, psk);
        let mut rng = ChaCha20Rng::from_seed(seed);
        // Sequence numbers start at a random point so ids never repeat
        // across restarts of the same identity.
        let seq = rng.next_u64() >> 16;
        let telemetry = crate::telemetry::build(&cfg.telemetry, &identity);
        let local_static = moss_crypto::LocalStatic::new(&identity, &keys.prologue);
        let mut subscriptions = BTreeSet::new();
        if telemetry.is_enabled() {
            subscriptions.insert(crate::telemetry::TELEMETRY_TOPIC.to_string());
        }
        let gossip = crate::pubsub::Gossip::new(&cfg, &subscriptions, now, &mut rng);
        Self {
            cfg,
            identity,
            scrambler: Scrambler::new(keys.scramble_key),
            keys,
            rng,
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            by_peer: HashMap::new(),
            subscriptions,
            seq,
            gossip,
            stats: Stats::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            free_bufs: Vec::new(),
            static_peers: Vec::new(),
            dirty: Vec::new(),
            next_tick: now,
            now,
            telemetry,
            local_static,
            handshake_budget: crate::session::TokenBucket::new(
                HANDSHAKE_BURST,
                HANDSHAKE_RATE,
                now,
            ),
            telemetry_bytes_seen: (0, 0),
            unix_origin: 0,
            detached: None,
        }
    }

    /// Switches to detached transport over `shards` shards: established
    /// sessions' ciphers leave the node ([`Node::poll_transport`]), the
    /// driver's [`crate::shard::SessionShard`]s open and seal their
    /// datagrams and feed the plaintext back ([`Node::handle_plaintext`]).
    /// Only before the first session.
    pub fn detach_transport(&mut self, shards: usize) -> Result<(), DetachError> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(DetachError::BadShardCount { got: shards });
        }
        if !self.sessions.is_empty() {
            return Err(DetachError::SessionsExist);
        }
        self.detached = Some(Detached {
            shards,
            next_owner: 0,
            next_dial: 0,
            ops: VecDeque::new(),
        });
        Ok(())
    }

    /// The shard count when transport is detached.
    pub fn detached_shards(&self) -> Option<usize> {
        self.detached.as_ref().map(|d| d.shards)
    }

    /// Next operation for the shards (detached transport only). Pending
    /// frames are handed out lazily here, like [`Node::poll_transmit`].
    pub fn poll_transport(&mut self) -> Option<TransportOp> {
        if self.detached.as_ref()?.ops.is_empty() {
            self.flush();
        }
        self.detached.as_mut()?.ops.pop_front()
    }

    /// Feeds a datagram that shard `shard` received and did not open (a
    /// handshake datagram): sessions it creates as responder are owned by
    /// that shard. The shard counted it already.
    pub fn handle_shard_datagram(
        &mut self,
        now: Time,
        from: SocketAddr,
        shard: usize,
        datagram: &mut [u8],
    ) {
        self.now = now;
        if let Some(d) = self.detached.as_mut() {
            d.next_owner = shard % d.shards;
        }
        self.dispatch_datagram(from, datagram);
    }

    /// Feeds the plaintext frames a shard opened for session `index`
    /// (detached transport): the session is alive, its peer's address is
    /// `from`, and the frames go to pub/sub as if the node had opened them.
    pub fn handle_plaintext(&mut self, now: Time, index: u32, from: SocketAddr, plain: &[u8]) {
        self.handle_plaintext_verified(now, index, from, plain, false);
    }

    /// [`Node::handle_plaintext`] for plaintext whose signed messages the
    /// shard already verified: with `verified` (the result of
    /// [`crate::preverify()`] on exactly these bytes) the node skips their
    /// Ed25519 checks.
    pub fn handle_plaintext_verified(
        &mut self,
        now: Time,
        index: u32,
        from: SocketAddr,
        plain: &[u8],
        verified: bool,
    ) {
        self.now = now;
        let Some(s) = self.sessions.get_mut(&index) else {
            return self.drop_input(DropReason::UnknownSession);
        };
        if s.established().is_none() {
            return self.drop_input(DropReason::NotEstablished);
        }
        s.heard(now);
        if s.addr != from {
            self.by_addr.remove(&s.addr);
            s.addr = from;
            self.by_addr.insert(from, index);
        }
        self.handle_frames(index, plain, verified);
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
        self.subscriptions
            .iter()
            .map(|s| s.as_str())
            .filter(|t| *t != crate::telemetry::TELEMETRY_TOPIC)
    }

    /// Established peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self
            .by_peer
            .values()
            .filter_map(|i| self.sessions.get(i))
            .filter_map(|s| {
                s.established().map(|e| PeerInfo {
                    peer: e.peer,
                    addr: s.addr,
                    topics: e.topics.iter().map(|t| t.to_string()).collect(),
                    observed: e.observed,
                    outbound: e.initiator,
                })
            })
            .collect();
        v.sort_by_key(|p| p.peer);
        v
    }

    /// Number of established peers.
    pub fn peer_count(&self) -> usize {
        self.by_peer.len()
    }

    /// Number of session slots, established or handshaking.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Adds a peer that is dialled now and re-dialled whenever lost.
    pub fn add_static_peer(&mut self, addr: SocketAddr) {
        if !self.static_peers.iter().any(|p| p.addr == addr) {
            self.static_peers.push(StaticPeer {
                addr,
                next_dial: self.now,
                backoff: Duration::from_secs(1),
            });
        }
    }

    /// Returns a transmit buffer for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.free_bufs.len() < 256 {
            buf.clear();
            self.free_bufs.push(buf);
        }
    }

    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        self.free_bufs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(MAX_DATAGRAM))
    }

    /// Next datagram to send. Pending frames are sealed lazily here, so
    /// frames produced by a whole batch of inputs share datagrams.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.flush();
        }
        self.transmits.pop_front()
    }

    /// Next event. Telemetry deltas are consumed here, never surfaced.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            let e = self.events.pop_front()?;
            if let Event::Message(m) = &e {
                if self.telemetry_intercept(m) {
                    continue;
                }
            }
            return Some(e);
        }
    }

    /// When [`Node::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Time {
        self.next_tick
    }

    pub(crate) fn emit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        self.transmits.push_back(Transmit { to, bytes });
    }

    pub(crate) fn drop_input(&mut self, r: DropReason) {
        self.stats.drops.add(r);
    }

    /// Feeds one received datagram. The buffer is modified in place
    /// (unmasked and decrypted); malformed input is dropped and counted.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, datagram: &mut [u8]) {
        self.now = now;
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        self.dispatch_datagram(from, datagram);
    }

    /// Unmasks and routes one datagram (already counted).
    fn dispatch_datagram(&mut self, from: SocketAddr, datagram: &mut [u8]) {
        if datagram.len() < MIN_DATAGRAM {
            return self.drop_input(DropReason::TooShort);
        }
        if datagram.len() > MAX_DATAGRAM {
            return self.drop_input(DropReason::Oversize);
        }
        self.scrambler.toggle_head(datagram);
        let mut raw = [0u8; HEAD_LEN];
        raw.copy_from_slice(&datagram[..HEAD_LEN]);
        match Head::decode(&raw) {
            Ok(Head::Data { receiver, counter }) => {
                self.handle_data(from, receiver, counter, &raw, &mut datagram[HEAD_LEN..])
            }
            Ok(Head::Handshake {
                kind,
                pad_len,
                nonce,
            }) => {
                let body = &mut datagram[HEAD_LEN..];
                self.scrambler.toggle_body(&nonce, body);
                self.handle_handshake(from, kind, pad_len, body)
            }
            Err(_) => self.drop_input(DropReason::Unrecognized),
        }
    }

    fn handle_data(
        &mut self,
        from: SocketAddr,
        receiver: u32,
        counter: u64,
        head: &[u8; HEAD_LEN],
        body: &mut [u8],
    ) {
        let now = self.now;
        let Some(s) = self.sessions.get_mut(&receiver) else {
            return self.drop_input(DropReason::UnknownSession);
        };
        if self.detached.is_some() {
            // Detached transport: the shards open data, never the node.
            return self.drop_input(DropReason::NotEstablished);
        }
        let Some(cipher) = s.established_mut().map(|e| &mut e.cipher) else {
            return self.drop_input(DropReason::NotEstablished);
        };
        let n = match cipher.open(counter, head, body) {
            Ok(n) => n,
            Err(moss_crypto::OpenError::Replay) => return self.drop_input(DropReason::Replay),
            Err(_) => return self.drop_input(DropReason::BadTag),
        };
        s.heard(now);
        if s.addr != from {
            // Authenticated datagram from a new address: the peer roamed.
            self.by_addr.remove(&s.addr);
            s.addr = from;
            self.by_addr.insert(from, receiver);
        }
        self.handle_frames(receiver, &body[..n], false);
    }

    /// Advances timers: retransmissions, keepalives, expiry, re-dials.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK;
        let hs_timeout = Duration::from_secs(u64::from(self.cfg.security.handshake_timeout_sec));
        let mut expired = Vec::new();
        let mut retransmit = Vec::new();
        let mut keepalive = Vec::new();
        for (&idx, s) in self.sessions.iter_mut() {
            match &mut s.state {
                State::Initiating(p) | State::Responding(p) => {
                    if now.saturating_sub(p.created) >= hs_timeout {
                        expired.push((idx, None));
                    } else if now >= p.next_retry {
                        p.attempts += 1;
                        p.next_retry =
                            now + HANDSHAKE_RETRY * 2u32.saturating_pow(p.attempts.min(6));
                        retransmit.push((s.addr, p.last_datagram.clone()));
                    }
                }
                State::Established(e) => {
                    if s.last_recv.since(now) >= IDLE_TIMEOUT {
                        expired.push((idx, Some(e.peer)));
                    } else {
                        e.reassembly.expire(now);
                        if s.last_send.since(now) >= KEEPALIVE {
                            keepalive.push(idx);
                        }
                    }
                }
            }
        }
        for (idx, peer) in expired {
            match peer {
                Some(_) => self.remove_session(idx, Some(DisconnectReason::Timeout)),
                None => {
                    self.stats.handshakes_failed += 1;
                    if let Some(s) = self.sessions.get(&idx) {
                        if matches!(s.state, State::Initiating(_)) {
                            let addr = s.addr;
                            self.events.push_back(Event::ConnectFailed {
                                addr,
                                reason: "handshake timed out".into(),
                            });
                        }
                    }
                    self.remove_session(idx, None);
                }
            }
        }
        for (to, bytes) in retransmit {
            self.emit(to, bytes);
        }
        for idx in keepalive {
            // Pending frames, or an empty sealed datagram, prove liveness.
            self.seal_and_send(idx, true);
        }
        self.redial_static(now);
        self.pubsub_tick(now);
        self.telemetry_tick();
    }

    fn redial_static(&mut self, now: Time) {
        let mut dial = Vec::new();
        for p in &mut self.static_peers {
            if self.by_addr.contains_key(&p.addr) {
                p.backoff = Duration::from_secs(1);
                continue;
            }
            if now >= p.next_dial {
                dial.push(p.addr);
                p.next_dial = now + p.backoff;
                p.backoff = (p.backoff * 2).min(MAX_REDIAL);
            }
        }
        for addr in dial {
            self.connect(addr);
        }
    }

    /// Removes a session slot; `reason` emits a disconnect event when it was
    /// the peer's established session.
    pub(crate) fn remove_session(&mut self, idx: u32, reason: Option<DisconnectReason>) {
        let Some(s) = self.sessions.remove(&idx) else {
            return;
        };
        if self.by_addr.get(&s.addr) == Some(&idx) {
            self.by_addr.remove(&s.addr);
        }
        if let State::Established(e) = &s.state {
            if let Some(d) = self.detached.as_mut() {
                d.ops.push_back(TransportOp::Remove { index: idx });
            }
            if self.by_peer.get(&e.peer) == Some(&idx) {
                self.by_peer.remove(&e.peer);
                self.pubsub_peer_down(&e.peer);
                if let Some(reason) = reason {
                    self.events.push_back(Event::PeerDisconnected {
                        peer: e.peer,
                        addr: s.addr,
                        reason,
                    });
                }
            }
        }
    }

    /// Closes every session (peers learn at once) and forgets them.
    pub fn shutdown(&mut self) {
        let idxs: Vec<u32> = self.by_peer.values().copied().collect();
        for idx in idxs {
            self.queue_frame(idx, &Frame::Close(0));
            self.seal_and_send(idx, false);
        }
        let all: Vec<u32> = self.sessions.keys().copied().collect();
        for idx in all {
            self.remove_session(idx, Some(DisconnectReason::Shutdown));
        }
        self.static_peers.clear();
    }

    pub(crate) fn mark_dirty(&mut self, idx: u32) {
        if !self.dirty.contains(&idx) {
            self.dirty.push(idx);
        }
    }

    /// Appends an encoded frame to a session's pending datagram, sealing the
    /// pending one first when the frame would not fit.
    pub(crate) fn queue_frame_bytes(&mut self, idx: u32, frame: &[u8]) {
        let Some(e) = self
            .sessions
            .get_mut(&idx)
            .and_then(|s| s.established_mut())
        else {
            return;
        };
        if e.pending.len() + frame.len() > crate::wire::MAX_PLAINTEXT {
            self.seal_and_send(idx, false);
        }
        if let Some(e) = self
            .sessions
            .get_mut(&idx)
            .and_then(|s| s.established_mut())
        {
            e.pending.extend_from_slice(frame);
        }
        self.mark_dirty(idx);
    }

    /// Encodes and queues one frame.
    pub(crate) fn queue_frame(&mut self, idx: u32, frame: &Frame) {
        let mut tmp = Vec::with_capacity(frame.encoded_len());
        frame.encode(&mut tmp);
        self.queue_frame_bytes(idx, &tmp);
    }

    fn flush(&mut self) {
        // The list keeps its capacity across flushes: no allocation per
        // round once it has grown to the number of busy sessions.
        let mut dirty = std::mem::take(&mut self.dirty);
        for &idx in &dirty {
            self.seal_and_send(idx, false);
        }
        dirty.clear();
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
    }

    /// Seals a session's pending frames into one datagram; with
    /// `allow_empty` an empty keepalive is sent too.
    pub(crate) fn seal_and_send(&mut self, idx: u32, allow_empty: bool) {
        if self.detached.is_some() {
            return self.hand_to_shard(idx, allow_empty);
        }
        let mut buf = self.buffer();
        let now = self.now;
        let Some(s) = self.sessions.get_mut(&idx) else {
            return self.recycle(buf);
        };
        let to = s.addr;
        let remote = s.remote_index;
        let Some(e) = s.established_mut() else {
            return self.recycle(buf);
        };
        if e.pending.is_empty() && !allow_empty {
            return self.recycle(buf);
        }
        let cipher = &mut e.cipher;
        let head = Head::Data {
            receiver: remote,
            counter: cipher.next_counter(),
        }
        .encode();
        buf.extend_from_slice(&head);
        buf.extend_from_slice(&e.pending);
        e.pending.clear();
        let mut tag = [0u8; TAG_LEN];
        if cipher.seal(&head, &mut buf[HEAD_LEN..], &mut tag).is_err() {
            // Counter exhausted: this session cannot send again.
            return self.recycle(buf);
        }
        buf.extend_from_slice(&tag);
        s.last_send = Stamp::at(now);
        self.scrambler.toggle_head(&mut buf);
        self.emit(to, buf);
    }

    /// Detached transport: hands a session's pending frames (or an empty
    /// keepalive) to its shard instead of sealing them here.
    fn hand_to_shard(&mut self, idx: u32, allow_empty: bool) {
        let fresh = self.buffer();
        let now = self.now;
        let plaintext = match self.sessions.get_mut(&idx) {
            Some(s) => match s.state {
                State::Established(ref mut e) if allow_empty || !e.pending.is_empty() => {
                    s.last_send = Stamp::at(now);
                    Some(std::mem::replace(&mut e.pending, fresh))
                }
                _ => {
                    self.recycle(fresh);
                    None
                }
            },
            None => {
                self.recycle(fresh);
                None
            }
        };
        if let (Some(plaintext), Some(d)) = (plaintext, self.detached.as_mut()) {
            d.ops.push_back(TransportOp::Send {
                index: idx,
                plaintext,
            });
        }
    }

    /// Detached transport: queues the install of a just-established
    /// session's cipher on its shard and returns a stand-in with random
    /// keys for the node's own slot (never used: the node neither seals
    /// nor opens when detached). Otherwise returns the cipher itself.
    pub(crate) fn detach_cipher(
        &mut self,
        idx: u32,
        remote_index: u32,
        addr: SocketAddr,
        cipher: moss_crypto::TransportCipher,
    ) -> moss_crypto::TransportCipher {
        if self.detached.is_none() {
            return cipher;
        }
        let mut keys = [0u8; 64];
        self.rng.fill_bytes(&mut keys);
        let mut send = [0u8; 32];
        let mut recv = [0u8; 32];
        send.copy_from_slice(&keys[..32]);
        recv.copy_from_slice(&keys[32..]);
        if let Some(d) = self.detached.as_mut() {
            d.ops.push_back(TransportOp::Install {
                index: idx,
                session: Box::new(crate::shard::ShardSession::new(remote_index, addr, cipher)),
            });
        }
        moss_crypto::TransportCipher::new(&send, &recv)
    }

    /// Detached transport: the next outbound dial's session goes to the
    /// next shard in turn (the reply lands wherever the kernel hashes it;
    /// a mismatch is handed over between shards).
    pub(crate) fn pick_dial_owner(&mut self) {
        if let Some(d) = self.detached.as_mut() {
            d.next_owner = d.next_dial;
            d.next_dial = (d.next_dial + 1) % d.shards;
        }
    }

    pub(crate) fn random_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            let i = match &self.detached {
                Some(d) => crate::shard::with_owner(i, d.next_owner),
                None => i,
            };
            if i != 0 && !self.sessions.contains_key(&i) {
                return i;
            }
        }
    }
}
