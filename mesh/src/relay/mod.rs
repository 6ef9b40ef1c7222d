//! Supernodes and relays (issue #12): every pair of nodes connects, through
//! a supernode when no direct path works.
//!
//! - [`promote`]: when a node may serve as a supernode (a pure decision,
//!   re-checked every 60 s); the node announces the status with a signed
//!   frame peers verify and pass on (two hops), and revokes it, signed,
//!   when a condition fails (events [`crate::Event::SupernodePromoted`],
//!   [`crate::Event::SupernodeRevoked`]).
//! - [`server`]: a supernode's relay sessions (signed request and accept,
//!   limits, TTL, close) and its control plane: handshakes of the two ends
//!   travel inside its sessions with them ([`frames::Relay::Data`]), and
//!   from them it learns the ends' session indices for the data plane.
//! - [`sessions`]: the server's table (one dense slot per session in
//!   [`slab`] chunks, ends by identity, a pair map), and
//!   [`route`]: the data plane on the shards: the ends' data datagrams go
//!   to the supernode's address and are forwarded unchanged by receiver
//!   index, within token buckets. The ends' Noise session is theirs: the
//!   supernode never holds their keys.
//! - [`client`]: an end's side: ask a supernode when a dial times out (or
//!   the NAT code reports a failed punch), dial through it, probe the
//!   peer's direct address and migrate when one answers
//!   ([`crate::Event::RelayMigrated`]); move to another supernode when the
//!   one in use leaves or revokes.
//!
//! Relay frames (0x60–0x6F, [`frames`]) go only to peers subscribed to
//! [`CAP_TOPIC`]; every node announces it with its subscriptions (not as a
//! gossip topic: [`is_capability`]).

pub mod choose;
pub mod client;
pub mod frames;
pub mod promote;
pub mod route;
pub mod server;
pub mod sessions;
pub mod slab;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::node::Node;
use crate::path::Path;
use crate::stats::DropReason;
use crate::wire::MAX_PLAINTEXT;
use crate::Time;
use frames::{Announce, Load, Relay};
use moss_crypto::PeerId;
use promote::{Eligibility, Ineligible, Standing, RECHECK};
use route::RouteLimits;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The capability topic of relay frames: peers subscribed to it understand
/// frames 0x60–0x6F.
pub const CAP_TOPIC: &str = "moss/cap/relay/v1";
/// The capability topic of the load report ([`frames::LOAD`]): only peers
/// subscribed to it get one (a node without it would take the frame type
/// for a malformed frame).
pub const LOAD_CAP_TOPIC: &str = "moss/cap/relay-load/v1";
pub use crate::pubsub::is_capability;

/// Most supernodes a node remembers from announcements.
pub const MAX_KNOWN: usize = 256;
/// Links an announcement travels at most (the announcer's peers and
/// theirs).
pub const ANNOUNCE_HOPS: u8 = 2;
/// How often a node that is not a supernode re-evaluates the rule (the
/// decision is pure and cheap; a supernode re-checks every [`RECHECK`]).
const PROMOTE_POLL: Duration = Duration::from_secs(1);
/// How often announcements go to peers that have not had ours.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// Times each peer is sent our announcement, a second apart (a
/// lost one left an end unaware of the one supernode it shares with its
/// peer, in the relay simulator, and the pair apart).
pub const ANNOUNCE_REPEATS: u8 = 3;
/// Bytes a relay DATA frame adds to the datagram it carries.
pub const DATA_OVERHEAD: usize = 3 + 8;

/// The data-plane limits of the default configuration.
pub fn default_limits() -> RouteLimits {
    limits_of(&Config::default())
}

/// The data-plane limits a configuration sets.
pub fn limits_of(cfg: &Config) -> RouteLimits {
    RouteLimits {
        peer_burst: cfg.security.rate_limit_burst,
        peer_rate: cfg.security.rate_limit_sustained,
        total_rate: cfg.nat.relay_max_bandwidth_kbps.saturating_mul(125),
    }
}

/// What a node's relay state looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayInfo {
    /// This node is a supernode now.
    pub supernode: bool,
    /// Why it is not (the first failing condition), once checked.
    pub ineligible: Option<Ineligible>,
    /// Supernodes known from announcements.
    pub known_supernodes: Vec<PeerId>,
    /// Relay sessions this node serves as a supernode.
    pub served_sessions: usize,
    /// Peers this node reaches through a relay now.
    pub relayed_peers: Vec<PeerId>,
    /// The last refusal a supernode sent us.
    pub last_refusal: Option<frames::RefuseReason>,
}

/// A node's relay state: promotion, the supernodes it knows, its server and
/// client halves.
pub(crate) struct RelayState {
    started: Time,
    next_check: Time,
    next_announce: Time,
    /// Our announcement counter (announce and revoke share it).
    seq: u64,
    /// Our current announcement while we are a supernode.
    announcement: Option<Announce>,
    /// Peers it went to, and how many times ([`ANNOUNCE_REPEATS`] at
    /// most: a datagram may be lost, and nothing acknowledges it).
    announced_to: HashMap<PeerId, u8>,
    last_verdict: Option<Ineligible>,
    /// Supernodes we heard of: their latest announcement counter and
    /// whether that was an announcement (true) or a revocation.
    known: HashMap<PeerId, (u64, bool)>,
    /// Supernodes' latest load reports.
    loads: HashMap<PeerId, Load>,
    /// Our report counter within the current announcement, and what we
    /// last reported (sessions, limit).
    load_count: u32,
    load_sent: Option<(u32, u32)>,
    /// Load-capable peers that have our current report.
    load_told: HashSet<PeerId>,
    pub server: server::Server,
    pub client: client::Client,
}

impl RelayState {
    /// The state of a node started at `now`.
    pub fn new(cfg: &Config, now: Time) -> Self {
        Self {
            started: now,
            next_check: now + PROMOTE_POLL,
            next_announce: now,
            seq: 0,
            announcement: None,
            announced_to: HashMap::new(),
            last_verdict: None,
            known: HashMap::new(),
            loads: HashMap::new(),
            load_count: 0,
            load_sent: None,
            load_told: HashSet::new(),
            server: server::Server::new(cfg),
            client: client::Client::default(),
        }
    }
}

impl Node {
    /// This node is a supernode now (`supernode_ready` in mesh info).
    pub fn is_supernode(&self) -> bool {
        self.relay.announcement.is_some()
    }

    /// Our local index and the peer's index of the established session
    /// with `peer` (the receiver index of the datagrams we send it), for
    /// tools that look at the wire (benchmarks, captures).
    pub fn session_indices(&self, peer: &PeerId) -> Option<(u32, u32)> {
        let idx = self.table.by_peer(peer)?;
        let s = self.table.get(idx)?;
        s.established().map(|_| (idx, s.remote_index))
    }

    /// A snapshot of the relay state.
    pub fn relay_info(&self) -> RelayInfo {
        let mut known: Vec<PeerId> = self
            .relay
            .known
            .iter()
            .filter(|(_, k)| k.1)
            .map(|(p, _)| *p)
            .collect();
        known.sort();
        RelayInfo {
            supernode: self.is_supernode(),
            ineligible: self.relay.last_verdict,
            known_supernodes: known,
            served_sessions: self.relay.server.len(),
            relayed_peers: self.relayed_peers(),
            last_refusal: self.relay.client.last_refusal,
        }
    }

    /// Whether the established session `idx`'s peer understands relay
    /// frames.
    pub(crate) fn relay_capable(&self, idx: u32) -> bool {
        self.table
            .established(idx)
            .is_some_and(|e| e.topics.contains(CAP_TOPIC))
    }

    /// Queues a relay frame to `peer` if it is connected and capable; false
    /// if not sent.
    pub(crate) fn send_relay(&mut self, peer: PeerId, f: &Relay<'_>) -> bool {
        let Some(idx) = self.table.by_peer(&peer) else {
            return false;
        };
        if !self.relay_capable(idx) {
            return false;
        }
        let mut frame = Vec::new();
        f.encode(&mut frame);
        if frame.len() > MAX_PLAINTEXT {
            return false;
        }
        match self.pending_room(idx, frame.len()) {
            Some(p) => {
                p.extend_from_slice(&frame);
                true
            }
            None => false,
        }
    }

    /// The data plane chose to relay a datagram the local transport got:
    /// it leaves, untouched, for `to`.
    pub(crate) fn relay_forward(&mut self, to: std::net::SocketAddr, datagram: &[u8]) {
        let mut buf = self.outbox.buffer();
        buf.extend_from_slice(datagram);
        self.stats.relayed_datagrams += 1;
        self.stats.relayed_bytes += datagram.len() as u64;
        self.outbox.emit(&mut self.stats, Path::Udp(to), buf);
    }

    /// Established, capable peers.
    fn capable_peers(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .table
            .by_peer
            .iter()
            .filter(|(_, &i)| self.relay_capable(i))
            .map(|(p, _)| *p)
            .collect();
        v.sort();
        v
    }

    /// The UDP path datagrams of a relayed session really take: the relay's
    /// own path. Other paths are their own.
    pub(crate) fn relay_wire_path(&self, path: Path) -> Path {
        match path {
            Path::Relay { via, .. } => self
                .table
                .by_peer(&via)
                .and_then(|i| self.table.get(i))
                .map(|s| s.path)
                .unwrap_or(path),
            p => p,
        }
    }

    /// A datagram for relay path (`via`, `session`) leaves through the
    /// node (handshake messages): wrapped in a DATA frame to the relay.
    pub(crate) fn relay_emit(&mut self, via: PeerId, session: u64, bytes: Vec<u8>) {
        let f = Relay::Data {
            session,
            datagram: &bytes,
        };
        if self.send_relay(via, &f) {
            self.stats.datagrams_out += 1;
            self.stats.bytes_out += bytes.len() as u64;
        }
        self.outbox.recycle(bytes);
    }

    /// Authenticated data of session `idx` came on `from`: for a relayed
    /// session, its relay's address (now, or when the relay session began)
    /// is the session's own path (no roaming);
    /// any other address means a direct path works, and the session
    /// migrates there. An address that is another peer's own path is a
    /// relay's (a datagram it forwarded late, after the session migrated):
    /// the session stays where it is, as its shard's record does
    /// ([`crate::shard::ShardSession`]). Returns the path to note.
    pub(crate) fn relay_inbound(&mut self, idx: u32, from: Path) -> Path {
        let Some(s) = self.table.get(idx) else {
            return from;
        };
        let own = s.path;
        if own != from {
            let peer = s.established().map(|e| e.peer);
            if let Some((_, other)) = self.table.other_on(from, idx) {
                if Some(other) != peer {
                    return own;
                }
            }
        }
        let Path::Relay { via, session } = own else {
            // A relayed end's own session with us roamed: its relay
            // sessions' data plane follows (the table rebinds the session
            // itself when the caller notes `from`).
            let moved = s
                .established()
                .filter(|e| e.retired.is_none() && own != from && own.udp().is_some())
                .map(|e| e.peer);
            if let (Some(peer), Some(to)) = (moved, from.udp()) {
                if !self.relay.server.is_empty() {
                    self.server_end_moved(peer, to);
                }
            }
            return from;
        };
        if self.relay_wire_path(own) == from
            || from == own
            || self.relay.client.began_at(via, session, from)
        {
            return own;
        }
        let Some(peer) = s.established().map(|e| e.peer) else {
            return from;
        };
        // Any direct path: a UDP address, or a host channel (a symmetric
        // end's spray socket that heard back is one; before, only UDP
        // counted, so such an end moved off the relay without event 7).
        // Another relay is no migration.
        if !matches!(from, Path::Relay { .. }) {
            self.relay_migrated(idx, peer, via, session, from);
        }
        from
    }

    /// A relay frame from the peer of session `idx`.
    pub(crate) fn relay_frame(&mut self, peer: PeerId, ty: u8, body: &[u8]) {
        let f = match Relay::decode(ty, body) {
            Ok(f) => f,
            Err(_) => {
                self.pubsub.router.penalise(&peer, 1.0);
                return self.drop_input(DropReason::MalformedFrame);
            }
        };
        match f {
            Relay::Announce(a) => self.on_announce(peer, a, false),
            Relay::Load(l) => self.on_load(peer, l),
            Relay::Revoke(a) => self.on_announce(peer, a, true),
            Relay::Request(r) => self.serve_request(peer, r),
            Relay::Accept(a) => self.on_accept(peer, a),
            Relay::Refuse { nonce, reason, .. } => self.on_refuse(peer, nonce, reason),
            Relay::Data { session, datagram } => {
                if self.relay.server.contains(session) {
                    self.serve_data(peer, session, datagram)
                } else {
                    self.on_relayed_datagram(peer, session, datagram)
                }
            }
            Relay::Close { session } => {
                if self.relay.server.contains(session) {
                    self.serve_close(peer, session)
                } else {
                    self.on_relay_closed(peer, session)
                }
            }
        }
    }

    /// A verified-or-not announcement or revocation from `from`.
    ///
    /// One that would change nothing (not newer than what we know of its
    /// supernode, or a new supernode while we know [`MAX_KNOWN`]) is
    /// dropped before its signature is checked: every announcement reaches
    /// a node many times, and at 10,000 simulated nodes checking those
    /// copies was half of all CPU.
    fn on_announce(&mut self, from: PeerId, mut a: Announce, revoke: bool) {
        let newer = self.relay.known.get(&a.node).is_none_or(|k| a.seq > k.0);
        if !newer {
            return;
        }
        if !self.relay.known.contains_key(&a.node) && self.relay.known.len() >= MAX_KNOWN {
            return;
        }
        if !a.verify(revoke) {
            self.pubsub.router.penalise(&from, 1.0);
            return self.drop_input(DropReason::RelayForged);
        }
        if a.node == self.public_key() {
            return;
        }
        // A revocation is remembered (with its counter) so an older
        // announcement replayed later does not resurrect the supernode.
        let was_known = self.relay.known.get(&a.node).is_some_and(|k| k.1);
        self.relay.known.insert(a.node, (a.seq, !revoke));
        if !revoke && !was_known {
            // Measure the round trip now: ends choose supernodes by it.
            if let Some(idx) = self.table.by_peer(&a.node).filter(|&i| self.nat_capable(i)) {
                self.nat_send_binding(idx, a.node);
            }
        }
        if revoke {
            self.relay_supernode_gone(a.node);
        }
        if a.hops.saturating_add(1) < ANNOUNCE_HOPS {
            a.hops += 1;
            let f = if revoke {
                Relay::Revoke(a)
            } else {
                Relay::Announce(a)
            };
            for p in self.capable_peers() {
                if p != from && p != a.node {
                    self.send_relay(p, &f);
                }
            }
        }
    }

    /// A load report from `from`: kept when it belongs to the supernode's
    /// current announcement and is newer than the last, and passed on like
    /// the announcement (to load-capable peers).
    ///
    /// One that would change nothing is dropped before its signature is
    /// checked, as an announcement is.
    fn on_load(&mut self, from: PeerId, mut l: Load) {
        let current = self.relay.known.get(&l.node) == Some(&(l.seq, true));
        let newer = self
            .relay
            .loads
            .get(&l.node)
            .is_none_or(|o| (l.seq, l.count) > (o.seq, o.count));
        if !current || !newer {
            return;
        }
        if !l.verify() {
            self.pubsub.router.penalise(&from, 1.0);
            return self.drop_input(DropReason::RelayForged);
        }
        if l.node == self.public_key() {
            return;
        }
        self.relay.loads.insert(l.node, l);
        if l.hops.saturating_add(1) < ANNOUNCE_HOPS {
            l.hops += 1;
            for p in self.load_capable_peers() {
                if p != from && p != l.node {
                    self.send_relay(p, &Relay::Load(l));
                }
            }
        }
    }

    /// Capable peers that also take load reports.
    fn load_capable_peers(&self) -> Vec<PeerId> {
        let mut v = self.capable_peers();
        v.retain(|p| {
            self.table
                .by_peer(p)
                .and_then(|i| self.table.established(i))
                .is_some_and(|e| e.topics.contains(LOAD_CAP_TOPIC))
        });
        v
    }

    /// As a supernode: a new signed load report when the sessions in use
    /// changed, to every load-capable peer that does not have the current
    /// one.
    fn report_load(&mut self) {
        let Some(a) = self.relay.announcement else {
            return;
        };
        let now = (
            self.relay.server.len() as u32,
            self.cfg.nat.relay_max_sessions,
        );
        if self.relay.load_sent != Some(now) {
            self.relay.load_count += 1;
            self.relay.load_sent = Some(now);
            self.relay.load_told.clear();
        }
        let mut to = self.load_capable_peers();
        to.retain(|p| !self.relay.load_told.contains(p));
        if to.is_empty() {
            // Every peer has it: no need to sign it again (each second).
            return;
        }
        let l = Load::sign(&self.identity, a.seq, self.relay.load_count, now.0, now.1);
        for p in to {
            if self.send_relay(p, &Relay::Load(l)) {
                self.relay.load_told.insert(p);
            }
        }
    }

    /// The periodic part: promotion re-check, announcements to new peers,
    /// the server's expiry and the client's probes and renewals.
    pub(crate) fn relay_tick(&mut self, now: Time) {
        if now >= self.relay.next_check {
            self.recheck_supernode();
            let every = if self.is_supernode() {
                RECHECK
            } else {
                PROMOTE_POLL
            };
            self.relay.next_check = now + every;
        }
        if now >= self.relay.next_announce {
            self.relay.next_announce = now + ANNOUNCE_EVERY;
            self.announce_to_new_peers();
            self.report_load();
        }
        self.server_tick(now);
        self.client_tick(now);
    }

    fn eligibility(&self) -> Eligibility {
        Eligibility {
            inbound_confirmed: self.reach.inbound_confirmed(),
            uptime: self.now.saturating_sub(self.relay.started),
            min_uptime: Duration::from_secs(u64::from(self.cfg.nat.supernode_min_uptime_sec)),
            nat: self.reach.nat_type(),
            standing: Standing {
                peers: self.peer_count(),
            },
        }
    }

    /// Runs the promotion decision now and acts on a change.
    pub(crate) fn recheck_supernode(&mut self) {
        let verdict = self.eligibility().decide();
        self.relay.last_verdict = verdict.err();
        match (verdict, self.is_supernode()) {
            (Ok(()), false) => {
                self.relay.seq += 1;
                let a = Announce::sign(&self.identity, false, self.relay.seq);
                self.relay.announcement = Some(a);
                self.relay.announced_to.clear();
                self.relay.load_count = 0;
                self.relay.load_sent = None;
                self.events.push_back(crate::Event::SupernodePromoted);
                self.announce_to_new_peers();
            }
            (Err(why), true) => self.revoke_supernode(why.to_string()),
            _ => {}
        }
    }

    /// Steps down: a signed revocation to every capable peer, every relay
    /// session closed, event 4.
    pub(crate) fn revoke_supernode(&mut self, why: String) {
        self.relay.announcement = None;
        self.relay.announced_to.clear();
        self.relay.seq += 1;
        let r = Announce::sign(&self.identity, true, self.relay.seq);
        for p in self.capable_peers() {
            self.send_relay(p, &Relay::Revoke(r));
        }
        self.close_all_served();
        self.events
            .push_back(crate::Event::SupernodeRevoked { reason: why });
    }

    fn announce_to_new_peers(&mut self) {
        let Some(a) = self.relay.announcement else {
            return;
        };
        for p in self.capable_peers() {
            let sent = self.relay.announced_to.get(&p).copied().unwrap_or(0);
            if sent < ANNOUNCE_REPEATS && self.send_relay(p, &Relay::Announce(a)) {
                self.relay.announced_to.insert(p, sent + 1);
            }
        }
    }

    /// Peer `peer`'s last session ended (`path` was its path).
    pub(crate) fn relay_peer_down(&mut self, peer: PeerId, path: Path) {
        self.relay.announced_to.remove(&peer);
        self.relay.load_told.remove(&peer);
        self.server_peer_down(peer);
        self.client_peer_down(peer, path);
        if self.is_supernode() && !self.eligibility().standing.good() {
            // The standing condition just failed: no need to wait for the
            // periodic re-check to step down.
            self.recheck_supernode();
        }
    }

    /// Supernodes we know of and are connected to, capable and not scored
    /// below zero by us, best first ([`choose::rank`]: lowest measured
    /// round trip, then score).
    pub(crate) fn usable_supernodes(&self) -> Vec<choose::Candidate> {
        let v: Vec<choose::Candidate> = self
            .relay
            .known
            .iter()
            .filter(|(_, k)| k.1)
            .filter_map(|(p, k)| {
                let idx = self.table.by_peer(p)?;
                if !self.relay_capable(idx) {
                    return None;
                }
                let rtt = self.nat_rtt(p);
                Some(choose::Candidate {
                    id: *p,
                    rtt: (rtt > Duration::ZERO).then_some(rtt),
                    score: self.pubsub.router.peer_score(p, self.now),
                    load: self
                        .relay
                        .loads
                        .get(p)
                        .filter(|l| l.seq == k.0)
                        .map(Load::fraction),
                })
            })
            .collect();
        choose::rank(v)
    }
}
