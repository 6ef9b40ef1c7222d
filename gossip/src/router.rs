//! The router: peers, subscriptions, message handling and control messages.
//! Mesh maintenance and gossip emission live in `mesh.rs`.
//!
//! Per-peer state is kept small for idle peers (sorted topic vectors,
//! IDONTWANT state allocated on first use); the score side keeps a count
//! per IP and a record only for peers with something to score (the
//! address it needs for P6 is the router's, see `Router::score_of`).
//! Received messages are cached and forwarded without allocating (see the
//! crate docs).

use crate::config::Config;
use crate::control::{Control, PxPeer};
use crate::mcache::MessageCache;
use crate::score::PeerScore;
use crate::seen::SeenCache;
use crate::types::{Action, MessageId, Topic};
use crate::Time;
use moss_crypto::PeerId;
use rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why the router refused to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The message id was already seen (a replayed publish).
    #[error("duplicate message")]
    Duplicate,
    /// No peer of the topic is eligible.
    #[error("no eligible peers for the topic")]
    NoPeers,
}

/// What became of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// First copy; deliver it to the application when `subscribed`.
    New {
        /// We subscribe to its topic.
        subscribed: bool,
    },
    /// Seen before.
    Duplicate,
    /// The sender is graylisted; nothing was processed.
    Graylisted,
}

/// Host callback computing the application score (P5) of a peer from its
/// base score (the other components).
pub type AppScoreFn = Box<dyn FnMut(&PeerId, f64) -> f64 + Send>;

/// Per-peer state, kept small: most peers are idle, so what only busy
/// peers need (IDONTWANT ids, rate-limit time) is allocated on first use.
pub(crate) struct PeerState {
    pub outbound: bool,
    pub addr: SocketAddr,
    /// Topics it announced, sorted (a few per peer: a slice sized exactly,
    /// not a tree, and no spare capacity per peer).
    pub topics: Box<[Topic]>,
    busy: Option<Box<Busy>>,
    /// IHAVEs this heartbeat (u16, with the limits clamped to fit: the
    /// record stays 64 B).
    pub ihaves: u16,
    /// Ids asked for this heartbeat.
    pub asked: u16,
}

/// Inline sizes in bytes of the router's record per connected peer and
/// of the scorer's record, which only peers with something to score have
/// (map keys and heap they own not included).
pub fn peer_record_sizes() -> [(&'static str, usize); 2] {
    [
        ("router PeerState", std::mem::size_of::<PeerState>()),
        (
            "score PeerStats (busy peers only)",
            crate::score::peer_stats_size(),
        ),
    ]
}

/// State of peers that sent IDONTWANT or were rate limited.
#[derive(Default)]
struct Busy {
    /// Ids the peer told us it does not want.
    ids: HashMap<MessageId, Time>,
    /// The same, oldest first.
    order: VecDeque<MessageId>,
    /// When our rate limiter last dropped a message from this peer.
    rate_limited: Option<Time>,
}

impl PeerState {
    /// True when the peer announced `topic`.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.binary_search_by(|t| (**t).cmp(topic)).is_ok()
    }

    fn dont_want(&self, id: &MessageId) -> bool {
        self.busy.as_ref().is_some_and(|d| d.ids.contains_key(id))
    }

    /// When our rate limiter last dropped a message from this peer.
    pub fn rate_limited(&self) -> Option<Time> {
        self.busy.as_ref().and_then(|b| b.rate_limited)
    }
}

pub(crate) struct Fanout {
    pub peers: BTreeSet<PeerId>,
    pub last_pub: Time,
}

/// A PRUNE backoff: no GRAFT either way for the (topic, peer) before
/// `until`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// When it ends.
    pub until: Time,
    /// Set only because the peer went silent
    /// ([`Router::peer_unresponsive`]): our PRUNE was likely lost with its
    /// path, so a GRAFT from it meanwhile is it coming back, not
    /// misbehaviour.
    pub silent: bool,
}

/// A GossipSub router for one node.
pub struct Router {
    pub(crate) cfg: Config,
    pub(crate) peers: BTreeMap<PeerId, PeerState>,
    pub(crate) mesh: BTreeMap<Topic, BTreeSet<PeerId>>,
    pub(crate) fanout: BTreeMap<Topic, Fanout>,
    pub(crate) backoff: BTreeMap<(Topic, PeerId), Backoff>,
    pub(crate) mcache: MessageCache,
    pub(crate) seen: SeenCache,
    pub(crate) score: PeerScore,
    /// IWANT asks: id -> (peer asked, when), at most [`MAX_ASKS`] each.
    pub(crate) promises: HashMap<MessageId, Vec<(PeerId, Time)>>,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) heartbeats: u64,
    pub(crate) app_score: Option<AppScoreFn>,
    pub(crate) next_heartbeat: Time,
    /// Ids announced by early IDONTWANT (bounded).
    pub(crate) early: std::collections::HashSet<MessageId>,
    pub(crate) early_order: VecDeque<MessageId>,
    /// Our own recent messages: (id, topic, heartbeat published).
    pub(crate) own: VecDeque<(MessageId, Topic, u64)>,
    /// Peers that subscribed to a topic after we published on it: (peer,
    /// topic, last heartbeat it hears of our own messages there), at most
    /// [`MAX_LATE`].
    pub(crate) late: VecDeque<(PeerId, Topic, u64)>,
    /// Scratch list of forward targets (kept to avoid an allocation per
    /// message).
    pub(crate) scratch_peers: Vec<PeerId>,
}

pub(crate) fn shuffle<T>(v: &mut [T], rng: &mut impl RngCore) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Most ids remembered as announced by early IDONTWANT.
pub const MAX_EARLY: usize = 4096;

/// Most peers asked at once for one message id.
pub const MAX_ASKS: usize = 2;

/// Most topics one peer may announce.
pub const MAX_PEER_TOPICS: usize = 4096;
/// Most (peer, topic) pairs hearing of our own messages as late joiners.
pub const MAX_LATE: usize = 1024;
/// Heartbeats a late joiner hears of our own messages of its topic.
pub const LATE_BEATS: u64 = 10;
/// Longest backoff a PRUNE may impose.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

impl Router {
    /// A router with a validated configuration; the first heartbeat is at
    /// `first_heartbeat` (hosts spread it over one period so that nodes do
    /// not beat in lockstep).
    pub fn new(cfg: Config, first_heartbeat: Time) -> Self {
        let now = first_heartbeat.saturating_sub(cfg.heartbeat);
        Self {
            mcache: MessageCache::new(cfg.mcache_len, cfg.mcache_gossip, cfg.mcache_max_bytes),
            seen: SeenCache::new(cfg.seen_ttl, cfg.seen_capacity),
            score: PeerScore::new(cfg.score.clone()),
            next_heartbeat: now + cfg.heartbeat,
            cfg,
            peers: BTreeMap::new(),
            mesh: BTreeMap::new(),
            fanout: BTreeMap::new(),
            backoff: BTreeMap::new(),
            promises: HashMap::new(),
            actions: VecDeque::new(),
            heartbeats: 0,
            app_score: None,
            own: VecDeque::new(),
            late: VecDeque::new(),
            early: std::collections::HashSet::new(),
            early_order: VecDeque::new(),
            scratch_peers: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Installs the P5 callback, called for every peer each heartbeat.
    pub fn set_app_score(&mut self, f: AppScoreFn) {
        self.app_score = Some(f);
    }

    /// Next action for the host.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Heartbeats run so far.
    pub fn heartbeat_count(&self) -> u64 {
        self.heartbeats
    }

    /// When [`Router::heartbeat`] is due.
    pub fn next_heartbeat(&self) -> Time {
        self.next_heartbeat
    }

    /// The local score of a peer (never sent anywhere).
    pub fn peer_score(&self, peer: &PeerId, now: Time) -> f64 {
        self.score_of(peer, now)
    }

    /// The score of `peer`, with the address its record here holds while
    /// it is connected (the scorer keeps no address of its own).
    pub(crate) fn score_of(&self, peer: &PeerId, now: Time) -> f64 {
        let ip = self.peers.get(peer).map(|s| s.addr.ip());
        self.score.score(peer, ip, now)
    }

    /// True while a session with `peer` is up (the scorer is told, per
    /// call, whether to make a record for it).
    pub(crate) fn connected(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// True when the peer's score is below the graylist threshold.
    pub fn is_graylisted(&self, peer: &PeerId, now: Time) -> bool {
        self.score_of(peer, now) < self.cfg.thresholds.graylist
    }

    /// Our rate limiter dropped a message from `peer`: IWANT answers it
    /// may have sent are not counted as broken promises for a while.
    pub fn rate_limited(&mut self, peer: &PeerId, now: Time) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.busy.get_or_insert_with(Box::default).rate_limited = Some(now);
        }
    }

    /// Adds behaviour penalty (P7) to a peer, e.g. for malformed frames.
    pub fn penalise(&mut self, peer: &PeerId, n: f64) {
        let connected = self.connected(peer);
        self.score.add_penalty(peer, connected, n);
    }

    /// True when `id` was seen.
    pub fn is_seen(&self, id: &MessageId) -> bool {
        self.seen.contains(id)
    }

    /// Our mesh peers for `topic` (sorted).
    pub fn mesh_peers(&self, topic: &str) -> Vec<PeerId> {
        self.mesh
            .get(topic)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Fanout peers for `topic` (sorted).
    pub fn fanout_peers(&self, topic: &str) -> Vec<PeerId> {
        self.fanout
            .get(topic)
            .map(|f| f.peers.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The cached body of message `id` (what an [`Action::Send`] sends),
    /// while the message cache holds it.
    pub fn cached_body(&self, id: &MessageId) -> Option<&[u8]> {
        self.mcache.body(id)
    }

    /// Number of cached messages and their body bytes.
    pub fn cache_usage(&self) -> (usize, usize, usize) {
        (self.mcache.len(), self.mcache.bytes(), self.seen.len())
    }

    /// The router's shared name for topic `t`: a clone of the name its
    /// mesh or fanout holds (no allocation), or a new one.
    pub fn intern(&self, t: &str) -> Topic {
        self.topic(t)
    }

    pub(crate) fn topic(&self, t: &str) -> Topic {
        if let Some((k, _)) = self.mesh.get_key_value(t) {
            return k.clone();
        }
        if let Some((k, _)) = self.fanout.get_key_value(t) {
            return k.clone();
        }
        Arc::from(t)
    }

    pub(crate) fn send(&mut self, to: PeerId, control: Control) {
        self.actions.push_back(Action::Control { to, control });
    }

    /// A session with `peer` is up (idempotent: a new address is taken).
    pub fn add_peer(&mut self, peer: PeerId, addr: SocketAddr, outbound: bool) {
        let previous = self.peers.get(&peer).map(|s| s.addr.ip());
        self.score.add_peer(peer, addr.ip(), previous);
        let st = self.peers.entry(peer).or_insert_with(|| PeerState {
            outbound,
            addr,
            topics: Box::default(),
            busy: None,
            ihaves: 0,
            asked: 0,
        });
        st.addr = addr;
        st.outbound = outbound;
    }

    /// The session with `peer` ended.
    pub fn remove_peer(&mut self, peer: &PeerId, now: Time) {
        let Some(st) = self.peers.remove(peer) else {
            return;
        };
        for m in self.mesh.values_mut() {
            m.remove(peer);
        }
        for f in self.fanout.values_mut() {
            f.peers.remove(peer);
        }
        self.late.retain(|(p, _, _)| p != peer);
        self.score.remove_peer(peer, st.addr.ip(), now);
    }

    /// `peer` has been silent too long for a mesh peer (the host sees its
    /// session): it leaves every mesh and fanout now, with backoff and a
    /// PRUNE in case it is alive, instead of when its session times out.
    pub fn peer_unresponsive(&mut self, peer: &PeerId, now: Time) {
        let topics: Vec<Topic> = self
            .mesh
            .iter()
            .filter(|(_, m)| m.contains(peer))
            .map(|(t, _)| t.clone())
            .collect();
        for t in topics {
            if let Some(m) = self.mesh.get_mut(&t) {
                m.remove(peer);
            }
            self.score.prune(peer, &t, now);
            self.set_silence_backoff(&t, *peer, now);
            let msg = self.prune_msg(&t, peer, now, false);
            self.send(*peer, msg);
        }
        for f in self.fanout.values_mut() {
            f.peers.remove(peer);
        }
    }

    /// `peer` subscribed to `topic`. If we published on the topic within
    /// the own-gossip windows, the peer (new, or back on a new session:
    /// our flood may have gone to its dead session) hears of those
    /// messages for [`LATE_BEATS`] heartbeats, in or out of our mesh. A
    /// subscription we already had counts too: a peer sends its
    /// subscriptions again on each new session, and the old one may have
    /// died without our noticing (a relay's supernode gone).
    pub fn peer_subscribed(&mut self, peer: &PeerId, topic: &str) {
        let t = self.topic(topic);
        let Some(st) = self.peers.get_mut(peer) else {
            return;
        };
        if let Err(i) = st.topics.binary_search_by(|x| (**x).cmp(&*t)) {
            if st.topics.len() >= MAX_PEER_TOPICS {
                return;
            }
            let mut v = std::mem::take(&mut st.topics).into_vec();
            v.insert(i, t.clone());
            st.topics = v.into_boxed_slice();
        }
        if self.own.iter().any(|(_, ot, _)| *ot == t) {
            let until = self.heartbeats + LATE_BEATS;
            if let Some(l) = self.late.iter_mut().find(|l| l.0 == *peer && l.1 == t) {
                l.2 = until;
                return;
            }
            if self.late.len() >= MAX_LATE {
                self.late.pop_front();
            }
            self.late.push_back((*peer, t, until));
        }
    }

    /// `peer` left `topic`.
    pub fn peer_unsubscribed(&mut self, peer: &PeerId, topic: &str, now: Time) {
        if let Some(st) = self.peers.get_mut(peer) {
            if let Ok(i) = st.topics.binary_search_by(|x| (**x).cmp(topic)) {
                let mut v = std::mem::take(&mut st.topics).into_vec();
                v.remove(i);
                st.topics = v.into_boxed_slice();
            }
        }
        if let Some(m) = self.mesh.get_mut(topic) {
            if m.remove(peer) {
                self.score.prune(peer, topic, now);
            }
        }
        if let Some(f) = self.fanout.get_mut(topic) {
            f.peers.remove(peer);
        }
    }

    /// Topics `peer` announced.
    pub fn peer_topics(&self, peer: &PeerId) -> Vec<Topic> {
        self.peers
            .get(peer)
            .map(|p| p.topics.to_vec())
            .unwrap_or_default()
    }

    pub(crate) fn topic_peers(&self, topic: &str) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, s)| s.has_topic(topic))
            .map(|(p, _)| *p)
            .collect()
    }

    pub(crate) fn in_backoff(&self, topic: &Topic, peer: &PeerId, now: Time) -> bool {
        self.backoff
            .get(&(topic.clone(), *peer))
            .is_some_and(|b| now < b.until)
    }

    /// An ordinary backoff until `until` (a longer one stays).
    pub(crate) fn set_backoff(&mut self, topic: &Topic, peer: PeerId, until: Time) {
        let e = self
            .backoff
            .entry((topic.clone(), peer))
            .or_insert(Backoff {
                until,
                silent: false,
            });
        e.silent = false;
        e.until = e.until.max(until);
    }

    /// The prune backoff of a peer we left for silence: marked
    /// [`Backoff::silent`] unless an ordinary one is running.
    fn set_silence_backoff(&mut self, topic: &Topic, peer: PeerId, now: Time) {
        let until = now + self.cfg.prune_backoff;
        if self.in_backoff(topic, &peer, now) {
            return self.set_backoff(topic, peer, until);
        }
        let silent = Backoff {
            until,
            silent: true,
        };
        self.backoff.insert((topic.clone(), peer), silent);
    }

    /// We join `topic`: the mesh starts from fanout peers and other
    /// eligible topic peers, who get a GRAFT.
    pub fn join(&mut self, topic: &str, now: Time, rng: &mut impl RngCore) {
        let t = self.topic(topic);
        if self.mesh.contains_key(&t) {
            return;
        }
        let mut mesh = BTreeSet::new();
        if let Some(f) = self.fanout.remove(&t) {
            for p in f.peers {
                if mesh.len() < self.cfg.d && self.score_of(&p, now) >= 0.0 {
                    mesh.insert(p);
                }
            }
        }
        let mut more: Vec<PeerId> = self
            .topic_peers(&t)
            .into_iter()
            .filter(|p| !mesh.contains(p) && !self.in_backoff(&t, p, now))
            .filter(|p| self.score_of(p, now) >= 0.0)
            .collect();
        shuffle(&mut more, rng);
        for p in more {
            if mesh.len() >= self.cfg.d {
                break;
            }
            mesh.insert(p);
        }
        for p in &mesh {
            let connected = self.peers.contains_key(p);
            self.score.graft(p, connected, &t, now);
            self.send(*p, Control::Graft { topic: t.clone() });
        }
        self.mesh.insert(t, mesh);
    }

    /// We leave `topic`: every mesh peer gets a PRUNE.
    pub fn leave(&mut self, topic: &str, now: Time) {
        let Some(mesh) = self.mesh.remove(topic) else {
            return;
        };
        let t = self.topic(topic);
        let backoff = self.cfg.unsubscribe_backoff;
        for p in mesh {
            self.score.prune(&p, &t, now);
            self.set_backoff(&t, p, now + backoff);
            self.send(
                p,
                Control::Prune {
                    topic: Arc::from(topic),
                    backoff_secs: backoff.as_secs() as u32,
                    px: Vec::new(),
                },
            );
        }
    }

    /// True when we subscribe to `topic`.
    pub fn subscribed(&self, topic: &str) -> bool {
        self.mesh.contains_key(topic)
    }

    /// Publishes our own message: flood to every topic peer above the
    /// publish threshold (or mesh/fanout peers with flood publishing off).
    pub fn publish(
        &mut self,
        now: Time,
        id: MessageId,
        topic: &str,
        body: impl AsRef<[u8]>,
        rng: &mut impl RngCore,
    ) -> Result<usize, PublishError> {
        if self.seen.contains(&id) {
            return Err(PublishError::Duplicate);
        }
        let t = self.topic(topic);
        let publish_min = self.cfg.thresholds.publish;
        // The target list lives in the scratch vector kept between calls.
        let mut targets = std::mem::take(&mut self.scratch_peers);
        targets.clear();
        if self.cfg.flood_publish {
            let score = &self.score;
            targets.extend(
                self.peers
                    .iter()
                    .filter(|(p, s)| {
                        s.has_topic(&t) && score.score(p, Some(s.addr.ip()), now) >= publish_min
                    })
                    .map(|(p, _)| *p),
            );
        } else if let Some(m) = self.mesh.get(&t) {
            targets.extend(m.iter().copied());
        } else {
            let f = self.fanout_for(&t, now, rng);
            targets.extend(f);
        }
        if targets.is_empty() {
            self.scratch_peers = targets;
            return Err(PublishError::NoPeers);
        }
        if !self.mesh.contains_key(&t) {
            // Keep fanout state for gossip and later publishes.
            if !self.fanout.contains_key(&t) {
                self.fanout_for(&t, now, rng);
            }
            if let Some(f) = self.fanout.get_mut(&t) {
                f.last_pub = now;
            }
        }
        self.seen.insert(id, now);
        self.mcache.put(id, t.clone(), body.as_ref());
        self.own.push_back((id, t, self.heartbeats));
        // Bounded: a fast publisher advertises only its newest messages.
        while self.own.len() > self.cfg.max_ihave_length {
            self.own.pop_front();
        }
        for to in &targets {
            self.actions.push_back(Action::Send { to: *to, id });
        }
        let n = targets.len();
        self.scratch_peers = targets;
        Ok(n)
    }

    /// The fanout peers of `t`, choosing up to D when there are none.
    fn fanout_for(&mut self, t: &Topic, now: Time, rng: &mut impl RngCore) -> Vec<PeerId> {
        if let Some(f) = self.fanout.get(t) {
            if !f.peers.is_empty() {
                return f.peers.iter().copied().collect();
            }
        }
        let publish_min = self.cfg.thresholds.publish;
        let mut c: Vec<PeerId> = self
            .topic_peers(t)
            .into_iter()
            .filter(|p| self.score_of(p, now) >= publish_min)
            .collect();
        shuffle(&mut c, rng);
        c.truncate(self.cfg.d);
        self.fanout.insert(
            t.clone(),
            Fanout {
                peers: c.iter().copied().collect(),
                last_pub: now,
            },
        );
        c
    }

    /// A received copy of an already seen message.
    pub fn on_duplicate(&mut self, from: &PeerId, id: &MessageId, now: Time) {
        let connected = self.connected(from);
        self.score.duplicate(from, connected, id, now);
        self.mcache.mark_has(id, *from);
        if let Some(asks) = self.promises.get_mut(id) {
            asks.retain(|(p, _)| p != from);
            if asks.is_empty() {
                self.promises.remove(id);
            }
        }
    }

    /// A message from `from` failed validation (bad signature or rejected
    /// by the application): P4.
    pub fn on_invalid(&mut self, from: &PeerId, topic: &str) {
        let t = self.topic(topic);
        let connected = self.connected(from);
        self.score.invalid_message(from, connected, &t);
    }

    /// A valid message. New messages are cached, announced with IDONTWANT
    /// when large, and forwarded to mesh peers; `body` is what to forward,
    /// `None` when the message must go no further (hop limit).
    #[allow(clippy::too_many_arguments)]
    pub fn on_message(
        &mut self,
        now: Time,
        from: &PeerId,
        origin: &PeerId,
        id: MessageId,
        topic: &str,
        payload_len: usize,
        body: Option<impl AsRef<[u8]>>,
    ) -> Received {
        if self.is_graylisted(from, now) {
            return Received::Graylisted;
        }
        if !self.seen.insert(id, now) {
            self.on_duplicate(from, &id, now);
            return Received::Duplicate;
        }
        let t = self.topic(topic);
        self.promises.remove(&id);
        let connected = self.connected(from);
        self.score.first_delivery(from, connected, id, &t, now);
        let subscribed = self.mesh.contains_key(&t);
        let Some(body) = body else {
            return Received::New { subscribed };
        };
        self.mcache.put(id, t.clone(), body.as_ref());
        self.mcache.mark_has(&id, *from);
        let Some(mesh) = self.mesh.get(&t) else {
            return Received::New { subscribed: false };
        };
        // The forward list lives in a scratch vector kept between calls.
        let mut targets = std::mem::take(&mut self.scratch_peers);
        targets.clear();
        targets.extend(mesh.iter().filter(|p| *p != from && *p != origin));
        if self.cfg.idontwant
            && payload_len > self.cfg.idontwant_threshold
            && !self.early.contains(&id)
        {
            for p in &targets {
                self.send(*p, Control::IDontWant { ids: vec![id] });
            }
        }
        for &to in &targets {
            if self.peers.get(&to).is_some_and(|s| s.dont_want(&id)) {
                continue;
            }
            self.actions.push_back(Action::Send { to, id });
        }
        self.scratch_peers = targets;
        Received::New { subscribed: true }
    }

    /// The first fragment of a large message `id` on `topic` arrived from
    /// `from`: IDONTWANT goes to our other mesh peers now, before the rest
    /// of the message (and again, cheaply, never: `on_message` skips it).
    pub fn early_idontwant(&mut self, now: Time, from: &PeerId, id: MessageId, topic: &str) {
        if !self.cfg.idontwant
            || self.seen.contains(&id)
            || self.early.contains(&id)
            || self.is_graylisted(from, now)
            || self.score_of(from, now) < 0.0
        {
            return;
        }
        let Some(mesh) = self.mesh.get(topic) else {
            return;
        };
        let targets: Vec<PeerId> = mesh.iter().filter(|p| *p != from).copied().collect();
        if self.early_order.len() >= MAX_EARLY {
            if let Some(old) = self.early_order.pop_front() {
                self.early.remove(&old);
            }
        }
        self.early.insert(id);
        self.early_order.push_back(id);
        for p in targets {
            self.send(p, Control::IDontWant { ids: vec![id] });
        }
    }

    /// A control message from `from`.
    pub fn on_control(&mut self, now: Time, from: &PeerId, c: Control, rng: &mut impl RngCore) {
        if !self.peers.contains_key(from) || self.is_graylisted(from, now) {
            return;
        }
        match c {
            Control::Graft { topic } => self.on_graft(now, from, &topic),
            Control::Prune {
                topic,
                backoff_secs,
                px,
            } => self.on_prune(now, from, &topic, backoff_secs, px, rng),
            Control::IHave { topic, ids } => self.on_ihave(now, from, &topic, ids, rng),
            Control::IWant { ids } => self.on_iwant(now, from, ids),
            Control::IDontWant { ids } => self.on_idontwant(now, from, ids),
        }
    }

    pub(crate) fn prune_msg(&self, t: &Topic, to: &PeerId, now: Time, with_px: bool) -> Control {
        let mut px = Vec::new();
        if with_px && self.score_of(to, now) >= 0.0 {
            for (p, s) in &self.peers {
                if px.len() >= self.cfg.prune_peers {
                    break;
                }
                if p != to && s.has_topic(t) && self.score.score(p, Some(s.addr.ip()), now) >= 0.0 {
                    px.push(PxPeer {
                        peer: *p,
                        addr: s.addr,
                    });
                }
            }
        }
        Control::Prune {
            topic: t.clone(),
            backoff_secs: self.cfg.prune_backoff.as_secs() as u32,
            px,
        }
    }

    fn on_graft(&mut self, now: Time, from: &PeerId, topic: &str) {
        // A GRAFT implies the sender subscribes (its SUBSCRIBE may be lost).
        self.peer_subscribed(from, topic);
        let t = self.topic(topic);
        let Some(mesh) = self.mesh.get(&t) else {
            // Not subscribed: refuse without peer exchange.
            let m = self.prune_msg(&t, from, now, false);
            return self.send(*from, m);
        };
        if mesh.contains(from) {
            return;
        }
        let key = (t.clone(), *from);
        if let Some(Backoff { until, silent }) = self.backoff.get(&key).copied() {
            if silent {
                // We left it for silence and it is back: no penalty.
                self.backoff.remove(&key);
            } else if now < until {
                // GRAFT during backoff: P7, doubled for a flood.
                let mut pen = 1.0;
                let pruned_at = until.saturating_sub(self.cfg.prune_backoff);
                if now < pruned_at + self.cfg.graft_flood_threshold {
                    pen += 1.0;
                }
                let connected = self.connected(from);
                self.score.add_penalty(from, connected, pen);
                self.set_backoff(&t, *from, now + self.cfg.prune_backoff);
                let m = self.prune_msg(&t, from, now, false);
                return self.send(*from, m);
            }
        }
        if self.score_of(from, now) < 0.0 {
            self.set_backoff(&t, *from, now + self.cfg.prune_backoff);
            let m = self.prune_msg(&t, from, now, false);
            return self.send(*from, m);
        }
        let outbound = self.peers.get(from).is_some_and(|s| s.outbound);
        if mesh.len() >= self.cfg.d_high && !outbound {
            self.set_backoff(&t, *from, now + self.cfg.prune_backoff);
            let m = self.prune_msg(&t, from, now, true);
            return self.send(*from, m);
        }
        if let Some(m) = self.mesh.get_mut(&t) {
            m.insert(*from);
        }
        let connected = self.connected(from);
        self.score.graft(from, connected, &t, now);
        self.catch_up(&t, *from);
    }

    fn on_prune(
        &mut self,
        now: Time,
        from: &PeerId,
        topic: &str,
        backoff_secs: u32,
        px: Vec<PxPeer>,
        rng: &mut impl RngCore,
    ) {
        let t = self.topic(topic);
        if let Some(m) = self.mesh.get_mut(&t) {
            if m.remove(from) {
                self.score.prune(from, &t, now);
            }
        }
        let backoff = Duration::from_secs(u64::from(backoff_secs)).clamp(
            self.cfg.unsubscribe_backoff.min(self.cfg.prune_backoff),
            MAX_BACKOFF,
        );
        self.set_backoff(&t, *from, now + backoff);
        if px.is_empty() || self.score_of(from, now) < self.cfg.thresholds.accept_px {
            return;
        }
        let mut px: Vec<PxPeer> = px
            .into_iter()
            .filter(|x| !self.peers.contains_key(&x.peer))
            .collect();
        shuffle(&mut px, rng);
        px.truncate(self.cfg.prune_peers);
        for x in px {
            self.actions.push_back(Action::Dial(x.addr));
        }
    }

    fn on_ihave(
        &mut self,
        now: Time,
        from: &PeerId,
        topic: &str,
        ids: Vec<MessageId>,
        rng: &mut impl RngCore,
    ) {
        if self.score_of(from, now) < self.cfg.thresholds.gossip || !self.mesh.contains_key(topic) {
            return;
        }
        // Only subscribers gossip a topic to us.
        self.peer_subscribed(from, topic);
        // A mesh peer advertises what it thinks we lack; acknowledge what
        // we have with IDONTWANT so it stops.
        if self.mesh.get(topic).is_some_and(|m| m.contains(from)) {
            let have: Vec<MessageId> = ids
                .iter()
                .filter(|id| self.seen.contains(id))
                .copied()
                .collect();
            if !have.is_empty() {
                self.send(*from, Control::IDontWant { ids: have });
            }
        }
        let max = self.cfg.max_ihave_length.min(usize::from(u16::MAX));
        // Ask someone else too if the oldest ask is this old.
        let retry = (self.cfg.heartbeat / 2).max(Duration::from_millis(1));
        let Some(st) = self.peers.get_mut(from) else {
            return;
        };
        st.ihaves = st.ihaves.saturating_add(1);
        if usize::from(st.ihaves) > self.cfg.max_ihave_messages.min(usize::from(u16::MAX - 1))
            || usize::from(st.asked) >= max
        {
            return;
        }
        for id in &ids {
            self.mcache.mark_has(id, *from);
        }
        let mut want: Vec<MessageId> = ids
            .into_iter()
            .filter(|id| !self.seen.contains(id))
            .filter(|id| {
                // Ask when nobody was asked, when a second peer may be
                // asked, or when an ask (maybe to this very peer, whose
                // answer may be lost) is older than `retry`.
                self.promises.get(id).is_none_or(|asks| {
                    (asks.len() < MAX_ASKS && !asks.iter().any(|(p, _)| p == from))
                        || asks.iter().any(|(_, asked)| now >= *asked + retry)
                })
            })
            .collect();
        want.sort_unstable();
        want.dedup();
        shuffle(&mut want, rng);
        want.truncate(max - usize::from(st.asked));
        if want.is_empty() {
            return;
        }
        st.asked = st
            .asked
            .saturating_add(u16::try_from(want.len()).unwrap_or(u16::MAX));
        for id in &want {
            let asks = self.promises.entry(*id).or_default();
            if let Some(a) = asks.iter_mut().find(|(p, _)| p == from) {
                a.1 = now;
            } else {
                if asks.len() >= MAX_ASKS {
                    asks.remove(0);
                }
                asks.push((*from, now));
            }
        }
        self.send(*from, Control::IWant { ids: want });
    }

    fn on_iwant(&mut self, now: Time, from: &PeerId, ids: Vec<MessageId>) {
        if self.score_of(from, now) < self.cfg.thresholds.gossip {
            return;
        }
        let limit = self.cfg.gossip_retransmission;
        for id in ids.into_iter().take(self.cfg.max_ihave_length) {
            if self.mcache.take_for_iwant(&id, *from, limit) {
                self.actions.push_back(Action::Send { to: *from, id });
            }
        }
    }

    fn on_idontwant(&mut self, now: Time, from: &PeerId, ids: Vec<MessageId>) {
        let cap = self.cfg.max_idontwant_per_peer;
        let Some(st) = self.peers.get_mut(from) else {
            return;
        };
        let dw = st.busy.get_or_insert_with(Box::default);
        for id in ids {
            self.mcache.mark_has(&id, *from);
            if dw.ids.insert(id, now).is_none() {
                dw.order.push_back(id);
            }
            while dw.order.len() > cap {
                if let Some(old) = dw.order.pop_front() {
                    dw.ids.remove(&old);
                }
            }
        }
    }

    /// Once per heartbeat: forgets IDONTWANT entries older than three
    /// heartbeats (not the seen TTL), and resets each peer's per-heartbeat
    /// IHAVE and IWANT counters.
    pub(crate) fn expire_dont_want(&mut self, now: Time) {
        let ttl = self.cfg.heartbeat * 3;
        for st in self.peers.values_mut() {
            if let Some(dw) = st.busy.as_mut() {
                while let Some(id) = dw.order.front().copied() {
                    match dw.ids.get(&id) {
                        Some(&t) if now.saturating_sub(t) < ttl => break,
                        _ => {
                            dw.order.pop_front();
                            dw.ids.remove(&id);
                        }
                    }
                }
            }
            st.ihaves = 0;
            st.asked = 0;
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// The router's per-peer record stays 64 B (`moss-bench idle`: it is
    /// stored once per connected peer in the router's B-tree).
    #[test]
    fn peer_state_stays_64_bytes() {
        assert!(std::mem::size_of::<super::PeerState>() <= 64);
    }
}
