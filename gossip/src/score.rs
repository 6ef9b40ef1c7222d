//! Peer scoring, GossipSub v1.1 style. Per topic, weighted by the topic's
//! weight: P1 time in mesh, P2 first message deliveries, P3 mesh message
//! delivery deficit, P3b mesh failure penalty (a sticky, decaying counter
//! of the squared deficit a peer had when it left the mesh), P4 invalid
//! messages; the sum over topics is capped by `topic_score_cap` when that
//! is positive. Then per peer: P5 application score, P6 IP colocation, P7
//! behaviour penalty. Topics without parameters of their own use the
//! defaults (`ScoreParams::topic_defaults`). Scores are local: they
//! are never sent to anyone.

use crate::config::ConfigError;
use crate::small::PeerSet;
use crate::types::{MessageId, Topic};
use crate::Time;
use moss_crypto::PeerId;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// Calls the macro `$m` with the list of [`TopicParams`] fields, one
/// entry `#[doc] field / json_name: kind` each, where `kind` is `f64` or
/// `Duration` and `json_name` is the field's key in config documents
/// (durations in milliseconds, with the suffix `_ms`). This list is the one
/// source of the per-topic parameters: [`TopicParams`] is generated from it,
/// and the mesh config generates its JSON table from it.
#[macro_export]
macro_rules! topic_param_fields {
    ($m:ident) => {
        $m! {
            /// Weight of this topic's sum of P1–P4 in the peer's score (≥ 0).
            topic_weight / topic_weight: f64 = 1.0,
            /// P1 weight per quantum in mesh (≥ 0).
            time_in_mesh_weight / time_in_mesh_weight: f64 = 0.03,
            /// P1 quantum (> 0).
            time_in_mesh_quantum / time_in_mesh_quantum_ms: Duration = ::std::time::Duration::from_secs(1),
            /// P1 cap in quanta (≥ 0).
            time_in_mesh_cap / time_in_mesh_cap: f64 = 1000.0,
            /// P2 weight per first delivery (≥ 0).
            first_deliveries_weight / first_deliveries_weight: f64 = 0.66,
            /// P2 decay per decay interval, in (0, 1).
            first_deliveries_decay / first_deliveries_decay: f64 = 0.9,
            /// P2 counter cap (≥ 0).
            first_deliveries_cap / first_deliveries_cap: f64 = 50.0,
            /// P3 weight of the squared delivery deficit (≤ 0).
            mesh_deliveries_weight / mesh_deliveries_weight: f64 = -0.5,
            /// P3 counter decay, in (0, 1).
            mesh_deliveries_decay / mesh_deliveries_decay: f64 = 0.97,
            /// P3 deliveries expected (decayed counter) of an active mesh peer (≥ 0).
            mesh_deliveries_threshold / mesh_deliveries_threshold: f64 = 1.0,
            /// P3 counter cap (≥ the threshold).
            mesh_deliveries_cap / mesh_deliveries_cap: f64 = 20.0,
            /// Time in mesh before P3 applies.
            mesh_deliveries_activation / mesh_deliveries_activation_ms: Duration = ::std::time::Duration::from_secs(30),
            /// A mesh peer's copy this soon after the first copy still
            /// counts for P3 (at most 5 s).
            mesh_deliveries_window / mesh_deliveries_window_ms: Duration = ::std::time::Duration::from_millis(50),
            /// P3b weight of the mesh failure counter (≤ 0): the squared
            /// deficit of a peer that left the mesh with P3 active and a deficit.
            mesh_failure_penalty_weight / mesh_failure_penalty_weight: f64 = -0.5,
            /// P3b counter decay, in (0, 1).
            mesh_failure_penalty_decay / mesh_failure_penalty_decay: f64 = 0.97,
            /// P4 weight of the squared invalid-message counter (≤ 0).
            invalid_weight / invalid_weight: f64 = -10.0,
            /// P4 decay, in (0, 1).
            invalid_decay / invalid_decay: f64 = 0.99,
        }
    };
}

macro_rules! define_topic_params {
    ($($(#[$doc:meta])* $field:ident / $json:ident: $kind:ident = $default:expr,)*) => {
        /// Weights, caps and decays of one topic's score (P1–P4 and P3b).
        #[derive(Debug, Clone, PartialEq)]
        pub struct TopicParams {
            $($(#[$doc])* pub $field: $kind,)*
        }

        impl Default for TopicParams {
            /// The values of the reference.
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl TopicParams {
            /// The names of the fields, in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field),)*];
        }
    };
}

topic_param_fields!(define_topic_params);

impl TopicParams {
    /// Checks signs and ranges; the error names the first bad field.
    pub fn check(&self) -> Result<(), &'static str> {
        let decay = |d: f64| d > 0.0 && d < 1.0;
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        let nonpos = |v: f64| v.is_finite() && v <= 0.0;
        let checks: [(bool, &'static str); 16] = [
            (nonneg(self.topic_weight), "topic_weight"),
            (nonneg(self.time_in_mesh_weight), "time_in_mesh_weight"),
            (!self.time_in_mesh_quantum.is_zero(), "time_in_mesh_quantum"),
            (nonneg(self.time_in_mesh_cap), "time_in_mesh_cap"),
            (
                nonneg(self.first_deliveries_weight),
                "first_deliveries_weight",
            ),
            (decay(self.first_deliveries_decay), "first_deliveries_decay"),
            (nonneg(self.first_deliveries_cap), "first_deliveries_cap"),
            (
                nonpos(self.mesh_deliveries_weight),
                "mesh_deliveries_weight",
            ),
            (decay(self.mesh_deliveries_decay), "mesh_deliveries_decay"),
            (
                nonneg(self.mesh_deliveries_threshold),
                "mesh_deliveries_threshold",
            ),
            (
                nonneg(self.mesh_deliveries_cap)
                    && self.mesh_deliveries_cap >= self.mesh_deliveries_threshold,
                "mesh_deliveries_cap",
            ),
            (
                self.mesh_deliveries_window <= Duration::from_secs(5),
                "mesh_deliveries_window",
            ),
            (
                nonpos(self.mesh_failure_penalty_weight),
                "mesh_failure_penalty_weight",
            ),
            (
                decay(self.mesh_failure_penalty_decay),
                "mesh_failure_penalty_decay",
            ),
            (nonpos(self.invalid_weight), "invalid_weight"),
            (decay(self.invalid_decay), "invalid_decay"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, name)) => Err(name),
            None => Ok(()),
        }
    }
}

/// Weights, caps and decays of the score function: the per-topic
/// parameters (defaults and overrides per topic) and the peer-wide ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreParams {
    /// Parameters of every topic without its own entry in `topics`.
    pub topic_defaults: TopicParams,
    /// Cap of the weighted sum of topic scores (0 = no cap).
    pub topic_score_cap: f64,
    /// Topics with parameters of their own.
    pub topics: BTreeMap<String, TopicParams>,
    /// P5 weight of the host's application score.
    pub app_weight: f64,
    /// P6 weight (negative) of the squared surplus of peers on one IP.
    pub ip_colocation_weight: f64,
    /// Peers per IP tolerated before P6 applies.
    pub ip_colocation_threshold: usize,
    /// Loopback addresses are exempt from P6 (local tests, one machine).
    pub ip_colocation_exempt_loopback: bool,
    /// P7 weight (negative) of the squared excess behaviour penalty.
    pub behaviour_penalty_weight: f64,
    /// P7 penalty tolerated before it counts.
    pub behaviour_penalty_threshold: f64,
    /// P7 decay.
    pub behaviour_penalty_decay: f64,
    /// How often counters decay.
    pub decay_interval: Duration,
    /// Counters below this decay to zero.
    pub decay_to_zero: f64,
    /// How long the score of a disconnected peer is kept.
    pub retain_score: Duration,
}

impl Default for ScoreParams {
    fn default() -> Self {
        Self {
            topic_defaults: TopicParams::default(),
            topic_score_cap: 0.0,
            topics: BTreeMap::new(),
            app_weight: 1.0,
            ip_colocation_weight: -5.0,
            ip_colocation_threshold: 1,
            ip_colocation_exempt_loopback: true,
            behaviour_penalty_weight: -10.0,
            behaviour_penalty_threshold: 1.0,
            behaviour_penalty_decay: 0.99,
            decay_interval: Duration::from_secs(1),
            decay_to_zero: 0.01,
            retain_score: Duration::from_secs(120),
        }
    }
}

impl ScoreParams {
    /// Checks signs and ranges of the peer-wide fields, the topic defaults
    /// and every topic's parameters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let decay = |d: f64| d > 0.0 && d < 1.0;
        self.topic_defaults.check().map_err(ConfigError::Score)?;
        let checks: [(bool, &'static str); 7] = [
            (
                self.topic_score_cap.is_finite() && self.topic_score_cap >= 0.0,
                "topic_score_cap",
            ),
            (self.app_weight.is_finite(), "app_weight"),
            (
                self.ip_colocation_weight.is_finite() && self.ip_colocation_weight <= 0.0,
                "ip_colocation_weight",
            ),
            (
                self.behaviour_penalty_weight.is_finite() && self.behaviour_penalty_weight <= 0.0,
                "behaviour_penalty_weight",
            ),
            (
                decay(self.behaviour_penalty_decay),
                "behaviour_penalty_decay",
            ),
            (!self.decay_interval.is_zero(), "decay_interval"),
            (
                self.decay_to_zero.is_finite() && self.decay_to_zero >= 0.0,
                "decay_to_zero",
            ),
        ];
        if let Some((_, name)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(ConfigError::Score(name));
        }
        for (topic, t) in &self.topics {
            t.check().map_err(|field| ConfigError::TopicScore {
                topic: topic.clone(),
                field,
            })?;
        }
        Ok(())
    }
}

/// Score thresholds of the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Below this no gossip (IHAVE/IWANT) is exchanged with the peer.
    pub gossip: f64,
    /// Below this own messages are not flood-published to the peer.
    pub publish: f64,
    /// Below this everything from the peer is ignored.
    pub graylist: f64,
    /// Peer exchange is accepted only from peers at or above this.
    pub accept_px: f64,
    /// Opportunistic grafting when the median mesh score is below this.
    pub opportunistic_graft: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            gossip: -10.0,
            publish: -100.0,
            graylist: -10_000.0,
            accept_px: 0.0,
            opportunistic_graft: 1.0,
        }
    }
}

impl Thresholds {
    /// Checks the ordering.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.graylist <= self.publish
            && self.publish <= self.gossip
            && self.gossip <= 0.0
            && self.accept_px >= 0.0
        {
            Ok(())
        } else {
            Err(ConfigError::Thresholds)
        }
    }
}

#[derive(Debug, Default, Clone)]
struct TopicStats {
    in_mesh: bool,
    mesh_active: bool,
    graft_time: Time,
    mesh_time: Duration,
    first_deliveries: f64,
    mesh_deliveries: f64,
    mesh_failure: f64,
    invalid: f64,
}

impl TopicStats {
    /// The peer leaves the mesh: P3b takes the squared deficit when P3
    /// was active.
    fn leave_mesh(&mut self, tp: &TopicParams, now: Time) {
        if self.in_mesh {
            self.mesh_time += now.saturating_sub(self.graft_time);
            if self.mesh_active && self.mesh_deliveries < tp.mesh_deliveries_threshold {
                let deficit = tp.mesh_deliveries_threshold - self.mesh_deliveries;
                self.mesh_failure += deficit * deficit;
            }
        }
        self.in_mesh = false;
        self.mesh_active = false;
    }
}

/// A peer's score record. Most connected peers are idle (no topic
/// counters, no penalty, no application score) and have **no record**: the
/// router's peer record holds their address, which P6 needs, and passes it
/// in. A record exists while a connected peer has something to score, and
/// for a disconnected peer until `retain_score` has passed.
#[derive(Debug, Default)]
struct PeerStats {
    connected: bool,
    /// Forgotten at this time (milliseconds) once disconnected.
    expire_ms: u64,
    /// Sorted by topic; a handful per peer, so a vector.
    topics: Vec<(Topic, TopicStats)>,
    behaviour_penalty: f64,
    app_score: f64,
}

/// Inline size in bytes of the scorer's record per peer that has one (an
/// idle connected peer has none).
pub(crate) fn peer_stats_size() -> usize {
    std::mem::size_of::<PeerStats>()
}

/// Milliseconds of a time (saturating).
fn ms(t: Time) -> u64 {
    u64::try_from(t.as_millis()).unwrap_or(u64::MAX)
}

impl PeerStats {
    /// True when the record holds nothing that moves a score.
    fn is_idle(&self) -> bool {
        self.topics.is_empty() && self.behaviour_penalty == 0.0 && self.app_score == 0.0
    }

    fn topic(&self, t: &str) -> Option<&TopicStats> {
        self.topics
            .binary_search_by(|(k, _)| (**k).cmp(t))
            .ok()
            .map(|i| &self.topics[i].1)
    }

    fn topic_mut(&mut self, t: &str) -> Option<&mut TopicStats> {
        match self.topics.binary_search_by(|(k, _)| (**k).cmp(t)) {
            Ok(i) => Some(&mut self.topics[i].1),
            Err(_) => None,
        }
    }

    fn topic_entry(&mut self, t: &Topic) -> &mut TopicStats {
        let i = match self.topics.binary_search_by(|(k, _)| (**k).cmp(t)) {
            Ok(i) => i,
            Err(i) => {
                self.topics.insert(i, (t.clone(), TopicStats::default()));
                i
            }
        };
        &mut self.topics[i].1
    }
}

/// Most peers credited for one message (P3 counts near-first duplicates
/// from mesh peers; a mesh holds at most `D_high` plus a few outbound).
const MAX_CREDITED: usize = 16;

#[derive(Debug)]
struct Delivery {
    first: Time,
    topic: Topic,
    credited: PeerSet<MAX_CREDITED>,
}

/// Most delivery records kept (for P3's near-first duplicates).
const MAX_DELIVERY_RECORDS: usize = 65_536;

/// The scores of every peer we know.
///
/// The scorer does not keep the set of connected peers: its owner (the
/// [`crate::Router`], whose peer record has the address) says, per call,
/// whether a peer is connected (`connected`) and from which address (`ip`,
/// `Some` exactly while connected). A record is made only when a connected
/// peer gets something to score, so an idle peer costs the scorer nothing
/// but its share of the per-IP count.
#[derive(Debug)]
pub struct PeerScore {
    p: ScoreParams,
    /// Connected peers with something to score, and disconnected peers
    /// until their retention ends.
    peers: HashMap<PeerId, PeerStats>,
    /// Connected peers per IP (P6 needs only the count).
    ips: HashMap<IpAddr, u32>,
    deliveries: HashMap<MessageId, Delivery>,
    delivery_order: VecDeque<(MessageId, Time)>,
    last_decay: Time,
}

/// The parameters of `topic`.
fn params<'a>(p: &'a ScoreParams, topic: &str) -> &'a TopicParams {
    if p.topics.is_empty() {
        return &p.topic_defaults;
    }
    p.topics.get(topic).unwrap_or(&p.topic_defaults)
}

impl PeerScore {
    /// Empty scores.
    pub fn new(p: ScoreParams) -> Self {
        Self {
            p,
            peers: HashMap::new(),
            ips: HashMap::new(),
            deliveries: HashMap::new(),
            delivery_order: VecDeque::new(),
            last_decay: Time::ZERO,
        }
    }

    /// The parameters scoring `topic`.
    pub fn topic_params(&self, topic: &str) -> &TopicParams {
        params(&self.p, topic)
    }

    /// The record of `peer` to change: its own, or a new one for a
    /// connected peer that had none. `None` for a peer that is neither
    /// connected nor retained (nothing is scored for it).
    fn record(&mut self, peer: &PeerId, connected: bool) -> Option<&mut PeerStats> {
        if connected {
            Some(self.peers.entry(*peer).or_insert_with(|| PeerStats {
                connected: true,
                ..PeerStats::default()
            }))
        } else {
            self.peers.get_mut(peer)
        }
    }

    /// The current score of `peer`, connected from `ip` (`None` when it
    /// is not connected: no P6). 0 for an unknown peer.
    pub fn score(&self, peer: &PeerId, ip: Option<IpAddr>, now: Time) -> f64 {
        let p = &self.p;
        let mut total = 0.0;
        if let Some(s) = self.peers.get(peer) {
            let mut topics = 0.0;
            for (topic, t) in &s.topics {
                let tp = params(p, topic);
                let mut ts = 0.0;
                if t.in_mesh {
                    let mesh_time = t.mesh_time + now.saturating_sub(t.graft_time);
                    let q = mesh_time.as_secs_f64() / tp.time_in_mesh_quantum.as_secs_f64();
                    ts += tp.time_in_mesh_weight * q.min(tp.time_in_mesh_cap);
                }
                ts += tp.first_deliveries_weight * t.first_deliveries;
                if t.mesh_active && t.mesh_deliveries < tp.mesh_deliveries_threshold {
                    let deficit = tp.mesh_deliveries_threshold - t.mesh_deliveries;
                    ts += tp.mesh_deliveries_weight * deficit * deficit;
                }
                ts += tp.mesh_failure_penalty_weight * t.mesh_failure;
                ts += tp.invalid_weight * t.invalid * t.invalid;
                topics += tp.topic_weight * ts;
            }
            if p.topic_score_cap > 0.0 && topics > p.topic_score_cap {
                topics = p.topic_score_cap;
            }
            total = topics + p.app_weight * s.app_score;
            if s.behaviour_penalty > p.behaviour_penalty_threshold {
                let excess = s.behaviour_penalty - p.behaviour_penalty_threshold;
                total += p.behaviour_penalty_weight * excess * excess;
            }
        }
        if let Some(ip) = ip {
            if !(p.ip_colocation_exempt_loopback && ip.is_loopback()) {
                let n = self.ips.get(&ip).map_or(0, |&n| n as usize);
                if n > p.ip_colocation_threshold {
                    let surplus = (n - p.ip_colocation_threshold) as f64;
                    total += p.ip_colocation_weight * surplus * surplus;
                }
            }
        }
        total
    }

    /// The score without the application component (the callback's input).
    pub fn base_score(&self, peer: &PeerId, ip: Option<IpAddr>, now: Time) -> f64 {
        let app = self.peers.get(peer).map_or(0.0, |s| s.app_score);
        self.score(peer, ip, now) - self.p.app_weight * app
    }

    fn ip_down(ips: &mut HashMap<IpAddr, u32>, ip: &IpAddr) {
        if let Some(n) = ips.get_mut(ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                ips.remove(ip);
            }
        }
    }

    /// A peer connected from `ip`; `previous` is the address it was
    /// connected from if it already was (a new address moves its count).
    pub fn add_peer(&mut self, peer: PeerId, ip: IpAddr, previous: Option<IpAddr>) {
        if let Some(s) = self.peers.get_mut(&peer) {
            // A retained record scores the reconnected peer again.
            s.connected = true;
        }
        if previous == Some(ip) {
            return;
        }
        if let Some(old) = previous {
            Self::ip_down(&mut self.ips, &old);
        }
        *self.ips.entry(ip).or_insert(0) += 1;
    }

    /// A peer connected from `ip` disconnected; its score is retained for
    /// a while (a record is kept even when it held nothing, so a penalty
    /// it earns meanwhile, such as a broken promise, still counts if it
    /// comes back). Leaving its meshes this way counts for P3b like a
    /// prune.
    pub fn remove_peer(&mut self, peer: &PeerId, ip: IpAddr, now: Time) {
        Self::ip_down(&mut self.ips, &ip);
        let s = self.peers.entry(*peer).or_default();
        for (topic, t) in s.topics.iter_mut() {
            t.leave_mesh(params(&self.p, topic), now);
        }
        s.connected = false;
        s.expire_ms = ms(now + self.p.retain_score);
    }

    /// Sets the P5 input of a peer.
    pub fn set_app_score(&mut self, peer: &PeerId, connected: bool, v: f64) {
        let v = if v.is_finite() { v } else { 0.0 };
        if v == 0.0 && !self.peers.contains_key(peer) {
            return;
        }
        if let Some(s) = self.record(peer, connected) {
            s.app_score = v;
        }
    }

    /// The peer joined our mesh for `topic`.
    pub fn graft(&mut self, peer: &PeerId, connected: bool, topic: &Topic, now: Time) {
        if let Some(s) = self.record(peer, connected) {
            let t = s.topic_entry(topic);
            t.in_mesh = true;
            t.graft_time = now;
            t.mesh_time = Duration::ZERO;
            t.mesh_active = false;
        }
    }

    /// The peer left our mesh for `topic`; a delivery deficit while P3
    /// was active is remembered by P3b.
    pub fn prune(&mut self, peer: &PeerId, topic: &str, now: Time) {
        let tp = params(&self.p, topic);
        if let Some(t) = self.peers.get_mut(peer).and_then(|s| s.topic_mut(topic)) {
            t.leave_mesh(tp, now);
        }
    }

    /// Adds P7 penalty.
    pub fn add_penalty(&mut self, peer: &PeerId, connected: bool, n: f64) {
        if let Some(s) = self.record(peer, connected) {
            s.behaviour_penalty += n;
        }
    }

    /// An invalid message on `topic` came from `peer` (P4).
    pub fn invalid_message(&mut self, peer: &PeerId, connected: bool, topic: &Topic) {
        if let Some(s) = self.record(peer, connected) {
            s.topic_entry(topic).invalid += 1.0;
        }
    }

    /// `peer` delivered message `id` first (P2, and P3 when in mesh).
    pub fn first_delivery(
        &mut self,
        peer: &PeerId,
        connected: bool,
        id: MessageId,
        topic: &Topic,
        now: Time,
    ) {
        self.credit(peer, connected, topic, true);
        if self.delivery_order.len() >= MAX_DELIVERY_RECORDS {
            if let Some((old, _)) = self.delivery_order.pop_front() {
                self.deliveries.remove(&old);
            }
        }
        self.deliveries.insert(
            id,
            Delivery {
                first: now,
                topic: topic.clone(),
                credited: PeerSet::one(peer),
            },
        );
        self.delivery_order.push_back((id, now));
    }

    /// `peer` delivered a copy of `id` again; near-first copies from mesh
    /// peers still count for P3.
    pub fn duplicate(&mut self, peer: &PeerId, connected: bool, id: &MessageId, now: Time) {
        let Some(d) = self.deliveries.get_mut(id) else {
            return;
        };
        let window = params(&self.p, &d.topic).mesh_deliveries_window;
        if now.saturating_sub(d.first) > window || !d.credited.insert(peer, MAX_CREDITED) {
            return;
        }
        let topic = d.topic.clone();
        self.credit(peer, connected, &topic, false);
    }

    fn credit(&mut self, peer: &PeerId, connected: bool, topic: &Topic, first: bool) {
        let tp = params(&self.p, topic);
        let (fcap, mcap) = (tp.first_deliveries_cap, tp.mesh_deliveries_cap);
        // A duplicate from a peer outside our mesh for the topic credits
        // nothing: no record is made for it.
        let in_mesh = self
            .peers
            .get(peer)
            .and_then(|s| s.topic(topic))
            .is_some_and(|t| t.in_mesh);
        if !first && !in_mesh {
            return;
        }
        if let Some(s) = self.record(peer, connected) {
            let t = s.topic_entry(topic);
            if first {
                t.first_deliveries = (t.first_deliveries + 1.0).min(fcap);
            }
            if t.in_mesh {
                t.mesh_deliveries = (t.mesh_deliveries + 1.0).min(mcap);
            }
        }
    }

    /// Decays counters, activates P3, forgets expired peers and records;
    /// a connected peer's record that decayed to nothing goes too (the
    /// peer is idle again).
    pub fn refresh(&mut self, now: Time) {
        let p = &self.p;
        if now.saturating_sub(self.last_decay) < p.decay_interval {
            return;
        }
        self.last_decay = now;
        let z = p.decay_to_zero;
        let dec = |v: &mut f64, d: f64| {
            *v *= d;
            if v.abs() < z {
                *v = 0.0;
            }
        };
        let now_ms = ms(now);
        self.peers.retain(|_, s| {
            if !s.connected && now_ms >= s.expire_ms {
                return false;
            }
            dec(&mut s.behaviour_penalty, p.behaviour_penalty_decay);
            for (topic, t) in s.topics.iter_mut() {
                let tp = params(p, topic);
                dec(&mut t.first_deliveries, tp.first_deliveries_decay);
                dec(&mut t.mesh_deliveries, tp.mesh_deliveries_decay);
                dec(&mut t.mesh_failure, tp.mesh_failure_penalty_decay);
                dec(&mut t.invalid, tp.invalid_decay);
                if t.in_mesh && now.saturating_sub(t.graft_time) >= tp.mesh_deliveries_activation {
                    t.mesh_active = true;
                }
            }
            s.topics.retain(|(_, t)| {
                t.in_mesh
                    || t.first_deliveries > 0.0
                    || t.invalid > 0.0
                    || t.mesh_deliveries > 0.0
                    || t.mesh_failure > 0.0
            });
            !(s.connected && s.is_idle())
        });
        let horizon = Duration::from_secs(5);
        while let Some(&(id, t)) = self.delivery_order.front() {
            if now.saturating_sub(t) < horizon {
                break;
            }
            self.delivery_order.pop_front();
            self.deliveries.remove(&id);
        }
    }

    /// Peers sharing `ip` (for tests and diagnostics).
    pub fn peers_on_ip(&self, ip: &IpAddr) -> usize {
        self.ips.get(ip).map_or(0, |&n| n as usize)
    }

    /// Score records held (connected peers with something to score, and
    /// retained ones): for tests and diagnostics.
    pub fn records(&self) -> usize {
        self.peers.len()
    }

    #[cfg(test)]
    fn mesh_deliveries_scale(&mut self, peer: &PeerId, topic: &str, f: f64) {
        if let Some(t) = self.peers.get_mut(peer).and_then(|s| s.topic_mut(topic)) {
            t.mesh_deliveries *= f;
        }
    }

    /// The P3b counter of `peer` on `topic` (for tests and diagnostics).
    pub fn mesh_failure(&self, peer: &PeerId, topic: &str) -> f64 {
        self.peers
            .get(peer)
            .and_then(|s| s.topic(topic))
            .map_or(0.0, |t| t.mesh_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scorer with the connected peers' addresses kept beside it, the
    /// way the router keeps them in its peer records.
    struct Scored {
        s: PeerScore,
        at: HashMap<PeerId, IpAddr>,
    }

    impl Scored {
        fn new(p: ScoreParams) -> Self {
            Self {
                s: PeerScore::new(p),
                at: HashMap::new(),
            }
        }
        fn on(&self, p: &PeerId) -> bool {
            self.at.contains_key(p)
        }
        fn add_peer(&mut self, p: PeerId, ip: IpAddr) {
            let previous = self.at.insert(p, ip);
            self.s.add_peer(p, ip, previous);
        }
        fn remove_peer(&mut self, p: &PeerId, now: Time) {
            if let Some(ip) = self.at.remove(p) {
                self.s.remove_peer(p, ip, now);
            }
        }
        fn score(&self, p: &PeerId, now: Time) -> f64 {
            self.s.score(p, self.at.get(p).copied(), now)
        }
        fn base_score(&self, p: &PeerId, now: Time) -> f64 {
            self.s.base_score(p, self.at.get(p).copied(), now)
        }
        fn graft(&mut self, p: &PeerId, topic: &Topic, now: Time) {
            let c = self.on(p);
            self.s.graft(p, c, topic, now);
        }
        fn prune(&mut self, p: &PeerId, topic: &str, now: Time) {
            self.s.prune(p, topic, now);
        }
        fn add_penalty(&mut self, p: &PeerId, n: f64) {
            let c = self.on(p);
            self.s.add_penalty(p, c, n);
        }
        fn invalid_message(&mut self, p: &PeerId, topic: &Topic) {
            let c = self.on(p);
            self.s.invalid_message(p, c, topic);
        }
        fn first_delivery(&mut self, p: &PeerId, id: MessageId, topic: &Topic, now: Time) {
            let c = self.on(p);
            self.s.first_delivery(p, c, id, topic, now);
        }
        fn duplicate(&mut self, p: &PeerId, id: &MessageId, now: Time) {
            let c = self.on(p);
            self.s.duplicate(p, c, id, now);
        }
        fn credit(&mut self, p: &PeerId, topic: &Topic, first: bool) {
            let c = self.on(p);
            self.s.credit(p, c, topic, first);
        }
        fn set_app_score(&mut self, p: &PeerId, v: f64) {
            let c = self.on(p);
            self.s.set_app_score(p, c, v);
        }
        fn refresh(&mut self, now: Time) {
            self.s.refresh(now);
        }
        fn mesh_failure(&self, p: &PeerId, topic: &str) -> f64 {
            self.s.mesh_failure(p, topic)
        }
        fn mesh_deliveries_scale(&mut self, p: &PeerId, topic: &str, f: f64) {
            self.s.mesh_deliveries_scale(p, topic, f);
        }
        fn peers_on_ip(&self, ip: &IpAddr) -> usize {
            self.s.peers_on_ip(ip)
        }
    }

    /// An idle connected peer has no record; one appears when it earns a
    /// score, goes when that decays to nothing, and a disconnect keeps one
    /// (penalties still count) until the retention ends.
    #[test]
    fn records_exist_only_for_peers_with_something_to_score() {
        let mut s = Scored::new(ScoreParams::default());
        let a = PeerId([1; 32]);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        s.add_peer(a, ip);
        assert_eq!(s.s.records(), 0, "idle: no record");
        s.add_penalty(&a, 5.0);
        assert_eq!(s.s.records(), 1);
        assert!(s.score(&a, t(0)) < 0.0);
        for k in 1..2_000 {
            s.refresh(t(k));
        }
        assert_eq!(s.s.records(), 0, "decayed to nothing: gone again");
        assert_eq!(s.score(&a, t(2_000)), 0.0);
        s.remove_peer(&a, t(2_000));
        assert_eq!(s.s.records(), 1, "retained after the disconnect");
        s.add_penalty(&a, 5.0);
        s.add_peer(a, ip);
        assert!(
            s.score(&a, t(2_000)) < 0.0,
            "the penalty earned meanwhile counts"
        );
        s.remove_peer(&a, t(2_001));
        s.refresh(t(2_001 + 121));
        assert_eq!(s.s.records(), 0, "forgotten after retain_score");
        // Nothing is recorded for a peer that is neither connected nor
        // retained.
        s.add_penalty(&PeerId([2; 32]), 1.0);
        assert_eq!(s.s.records(), 0);
    }

    fn t(s: u64) -> Time {
        Duration::from_secs(s)
    }

    #[test]
    fn components_move_the_score_the_right_way() {
        let mut s = Scored::new(ScoreParams::default());
        let a = PeerId([1; 32]);
        let topic: Topic = "x".into();
        s.add_peer(a, "10.0.0.1".parse().unwrap());
        assert_eq!(s.score(&a, t(0)), 0.0);
        s.graft(&a, &topic, t(0));
        assert!((s.score(&a, t(10)) - 0.3).abs() < 1e-9, "P1");
        s.first_delivery(&a, [1; 32], &topic, t(10));
        assert!(s.score(&a, t(10)) > 0.9, "P2");
        s.invalid_message(&a, &topic);
        s.invalid_message(&a, &topic);
        assert!(s.score(&a, t(10)) < -39.0, "P4 is squared");
        s.set_app_score(&a, 50.0);
        assert!(s.score(&a, t(10)) > 10.0, "P5");
        assert!(s.base_score(&a, t(10)) < -39.0);
    }

    #[test]
    fn colocation_and_behaviour_penalties() {
        let mut s = Scored::new(ScoreParams::default());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for i in 0..4u8 {
            s.add_peer(PeerId([i; 32]), ip);
        }
        assert_eq!(
            s.score(&PeerId([0; 32]), t(0)),
            -45.0,
            "3 surplus squared * -5"
        );
        s.add_peer(PeerId([9; 32]), "127.0.0.1".parse().unwrap());
        s.add_peer(PeerId([8; 32]), "127.0.0.1".parse().unwrap());
        assert_eq!(s.score(&PeerId([9; 32]), t(0)), 0.0, "loopback exempt");
        s.add_penalty(&PeerId([9; 32]), 3.0);
        assert_eq!(s.score(&PeerId([9; 32]), t(0)), -40.0);
    }

    #[test]
    fn deficit_applies_after_activation_and_counters_decay() {
        let mut s = Scored::new(ScoreParams::default());
        let a = PeerId([1; 32]);
        let topic: Topic = "x".into();
        s.add_peer(a, "10.0.0.1".parse().unwrap());
        s.graft(&a, &topic, t(0));
        s.refresh(t(31));
        let with_deficit = s.score(&a, t(31));
        assert!((with_deficit - (0.03 * 31.0 - 0.5)).abs() < 1e-9);
        s.first_delivery(&a, [2; 32], &topic, t(31));
        s.duplicate(&a, &[2; 32], t(31));
        assert!(s.score(&a, t(31)) > with_deficit + 0.5);
        s.remove_peer(&a, t(32));
        s.refresh(t(32 + 121));
        assert_eq!(s.score(&a, t(200)), 0.0, "forgotten after retain_score");
    }

    fn peer_a() -> (Scored, PeerId) {
        (Scored::new(ScoreParams::default()), PeerId([1; 32]))
    }

    #[test]
    fn p3b_mesh_failure_is_sticky_and_decays() {
        let (mut s, a) = peer_a();
        let topic: Topic = "x".into();
        s.add_peer(a, "10.0.0.1".parse().unwrap());
        s.graft(&a, &topic, t(0));
        s.refresh(t(31));
        s.prune(&a, &topic, t(31));
        assert_eq!(s.mesh_failure(&a, "x"), 1.0, "deficit 1, squared");
        assert!((s.score(&a, t(31)) + 0.5).abs() < 1e-9, "P3b -0.5 * 1");
        s.refresh(t(32));
        assert!((s.score(&a, t(32)) + 0.5 * 0.97).abs() < 1e-9, "decays");
        // Grafted again, it still carries the penalty.
        s.graft(&a, &topic, t(32));
        assert!(s.score(&a, t(32)) < 0.0);
        // Decays to zero eventually and the record goes.
        for k in 33..400 {
            s.refresh(t(k));
            s.prune(&a, &topic, t(k));
        }
        assert_eq!(s.mesh_failure(&a, "x"), 0.0);
    }

    #[test]
    fn p3b_needs_an_active_deficit() {
        let (mut s, a) = peer_a();
        let topic: Topic = "x".into();
        s.add_peer(a, "10.0.0.1".parse().unwrap());
        // Pruned before activation: no penalty.
        s.graft(&a, &topic, t(0));
        s.refresh(t(10));
        s.prune(&a, &topic, t(10));
        assert_eq!(s.mesh_failure(&a, "x"), 0.0);
        // Active but delivering enough: no penalty.
        s.graft(&a, &topic, t(10));
        s.refresh(t(41));
        for i in 0..3u8 {
            s.first_delivery(&a, [i; 32], &topic, t(41));
        }
        s.prune(&a, &topic, t(41));
        assert_eq!(s.mesh_failure(&a, "x"), 0.0);
        // A partial deficit counts squared; a disconnect counts as leaving.
        let b = PeerId([2; 32]);
        s.add_peer(b, "10.0.0.2".parse().unwrap());
        s.graft(&b, &topic, t(41));
        s.refresh(t(72));
        s.credit(&b, &topic, false);
        s.mesh_deliveries_scale(&b, "x", 0.5);
        s.remove_peer(&b, t(72));
        assert!((s.mesh_failure(&b, "x") - 0.25).abs() < 1e-9);
        assert!(s.score(&b, t(72)) < 0.0);
    }

    #[test]
    fn p3b_weight_zero_turns_it_off() {
        let p = ScoreParams {
            topic_defaults: TopicParams {
                mesh_failure_penalty_weight: 0.0,
                ..TopicParams::default()
            },
            ..ScoreParams::default()
        };
        let mut s = Scored::new(p);
        let a = PeerId([1; 32]);
        let topic: Topic = "x".into();
        s.add_peer(a, "10.0.0.1".parse().unwrap());
        s.graft(&a, &topic, t(0));
        s.refresh(t(31));
        s.prune(&a, &topic, t(31));
        assert_eq!(s.score(&a, t(31)), 0.0);
    }

    fn with_topic(name: &str, tp: TopicParams) -> ScoreParams {
        let mut p = ScoreParams::default();
        p.topics.insert(name.into(), tp);
        p
    }

    #[test]
    fn per_topic_weights_and_topic_weight() {
        let tp = TopicParams {
            topic_weight: 2.0,
            time_in_mesh_weight: 0.1,
            first_deliveries_weight: 1.0,
            invalid_weight: -1.0,
            ..TopicParams::default()
        };
        let mut s = Scored::new(with_topic("a", tp));
        let p1 = PeerId([1; 32]);
        let (a, b): (Topic, Topic) = ("a".into(), "b".into());
        s.add_peer(p1, "10.0.0.1".parse().unwrap());
        s.graft(&p1, &a, t(0));
        assert!(
            (s.score(&p1, t(10)) - 2.0 * 0.1 * 10.0).abs() < 1e-9,
            "P1 of a"
        );
        s.graft(&p1, &b, t(10));
        assert!(
            (s.score(&p1, t(20)) - (4.0 + 0.3)).abs() < 1e-9,
            "b keeps the defaults"
        );
        s.first_delivery(&p1, [1; 32], &a, t(20));
        assert!(
            (s.score(&p1, t(20)) - (4.0 + 2.0 + 0.3)).abs() < 1e-9,
            "P2 of a"
        );
        s.invalid_message(&p1, &a);
        s.invalid_message(&p1, &a);
        assert!(
            (s.score(&p1, t(20)) - (4.0 + 2.0 - 2.0 * 4.0 + 0.3)).abs() < 1e-9,
            "P4 of a: -1 * 2^2, weighted 2"
        );
        s.invalid_message(&p1, &b);
        assert!(s.score(&p1, t(20)) < -9.0, "P4 of b: -10");
    }

    #[test]
    fn per_topic_caps_and_decays() {
        let tp = TopicParams {
            first_deliveries_cap: 2.0,
            first_deliveries_decay: 0.5,
            time_in_mesh_cap: 5.0,
            ..TopicParams::default()
        };
        let mut s = Scored::new(with_topic("a", tp));
        let p1 = PeerId([1; 32]);
        let a: Topic = "a".into();
        s.add_peer(p1, "10.0.0.1".parse().unwrap());
        for i in 0..5u8 {
            s.first_delivery(&p1, [i; 32], &a, t(0));
        }
        assert!((s.score(&p1, t(0)) - 0.66 * 2.0).abs() < 1e-9, "P2 cap 2");
        s.refresh(t(1));
        assert!((s.score(&p1, t(1)) - 0.66).abs() < 1e-9, "P2 decay 0.5");
        let q = PeerId([2; 32]);
        s.add_peer(q, "10.0.0.2".parse().unwrap());
        s.graft(&q, &a, t(0));
        assert!((s.score(&q, t(100)) - 0.03 * 5.0).abs() < 1e-9, "P1 cap 5");
    }

    #[test]
    fn per_topic_p3_and_p3b() {
        let tp = TopicParams {
            mesh_deliveries_threshold: 4.0,
            mesh_deliveries_cap: 10.0,
            mesh_deliveries_activation: Duration::from_secs(5),
            mesh_failure_penalty_weight: -2.0,
            time_in_mesh_weight: 0.0,
            ..TopicParams::default()
        };
        let mut s = Scored::new(with_topic("a", tp));
        let p1 = PeerId([1; 32]);
        let a: Topic = "a".into();
        s.add_peer(p1, "10.0.0.1".parse().unwrap());
        s.graft(&p1, &a, t(0));
        s.refresh(t(6));
        assert!((s.score(&p1, t(6)) + 0.5 * 16.0).abs() < 1e-9, "deficit 4");
        s.prune(&p1, &a, t(6));
        assert!(
            (s.score(&p1, t(6)) + 2.0 * 16.0).abs() < 1e-9,
            "P3b -2 * 16"
        );
    }

    #[test]
    fn topic_score_cap_bounds_only_the_topic_part() {
        let p = ScoreParams {
            topic_score_cap: 0.5,
            ..ScoreParams::default()
        };
        let mut s = Scored::new(p);
        let a = PeerId([1; 32]);
        let topic: Topic = "x".into();
        s.add_peer(a, "10.0.0.1".parse().unwrap());
        s.graft(&a, &topic, t(0));
        assert!((s.score(&a, t(5)) - 0.15).abs() < 1e-9, "below the cap");
        assert_eq!(s.score(&a, t(100)), 0.5, "capped");
        s.set_app_score(&a, 3.0);
        assert_eq!(s.score(&a, t(100)), 3.5, "P5 is outside the cap");
        s.add_penalty(&a, 2.0);
        assert_eq!(s.score(&a, t(100)), 3.5 - 10.0, "P7 is outside the cap");
    }

    #[test]
    fn topic_params_are_validated_by_name() {
        let bad = TopicParams {
            mesh_failure_penalty_weight: 1.0,
            ..TopicParams::default()
        };
        assert_eq!(
            with_topic("a", bad).validate(),
            Err(ConfigError::TopicScore {
                topic: "a".into(),
                field: "mesh_failure_penalty_weight"
            })
        );
        let bad = TopicParams {
            topic_weight: -1.0,
            ..TopicParams::default()
        };
        assert!(with_topic("a", bad).validate().is_err());
        let p = ScoreParams {
            topic_score_cap: -1.0,
            ..ScoreParams::default()
        };
        assert_eq!(p.validate(), Err(ConfigError::Score("topic_score_cap")));
        let p = ScoreParams {
            topic_defaults: TopicParams {
                mesh_failure_penalty_decay: 1.5,
                ..TopicParams::default()
            },
            ..ScoreParams::default()
        };
        assert_eq!(
            p.validate(),
            Err(ConfigError::Score("mesh_failure_penalty_decay"))
        );
        assert_eq!(ScoreParams::default().validate(), Ok(()));
    }

    #[test]
    fn colocation_counts_follow_reconnects() {
        let (mut s, a) = peer_a();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        s.add_peer(a, ip);
        s.add_peer(a, ip);
        assert_eq!(s.peers_on_ip(&ip), 1, "idempotent");
        s.add_peer(a, "10.0.0.2".parse().unwrap());
        assert_eq!(s.peers_on_ip(&ip), 0, "moved");
        s.remove_peer(&a, t(1));
        assert_eq!(s.peers_on_ip(&"10.0.0.2".parse().unwrap()), 0);
    }
}
