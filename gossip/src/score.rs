//! Peer scoring, GossipSub v1.1 style: P1 time in mesh, P2 first message
//! deliveries, P3 mesh message delivery deficit, P4 invalid messages, P5
//! application score, P6 IP colocation, P7 behaviour penalty. Scores are
//! local: they are never sent to anyone.

use crate::config::ConfigError;
use crate::types::{MessageId, Topic};
use crate::Time;
use moss_crypto::PeerId;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// Weights, caps and decays of the score function (one set for all topics,
/// topic weight 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreParams {
    /// P1 weight per quantum in mesh.
    pub time_in_mesh_weight: f64,
    /// P1 quantum.
    pub time_in_mesh_quantum: Duration,
    /// P1 cap in quanta.
    pub time_in_mesh_cap: f64,
    /// P2 weight per first delivery.
    pub first_deliveries_weight: f64,
    /// P2 decay per decay interval.
    pub first_deliveries_decay: f64,
    /// P2 counter cap.
    pub first_deliveries_cap: f64,
    /// P3 weight (negative) of the squared deficit.
    pub mesh_deliveries_weight: f64,
    /// P3 counter decay.
    pub mesh_deliveries_decay: f64,
    /// P3 deliveries expected (decayed counter) of an active mesh peer.
    pub mesh_deliveries_threshold: f64,
    /// P3 counter cap.
    pub mesh_deliveries_cap: f64,
    /// Time in mesh before P3 applies.
    pub mesh_deliveries_activation: Duration,
    /// A duplicate this soon after the first copy still counts for P3.
    pub mesh_deliveries_window: Duration,
    /// P4 weight (negative) of the squared invalid-message counter.
    pub invalid_weight: f64,
    /// P4 decay.
    pub invalid_decay: f64,
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
            time_in_mesh_weight: 0.03,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: 1000.0,
            first_deliveries_weight: 0.66,
            first_deliveries_decay: 0.9,
            first_deliveries_cap: 50.0,
            mesh_deliveries_weight: -0.5,
            mesh_deliveries_decay: 0.97,
            mesh_deliveries_threshold: 1.0,
            mesh_deliveries_cap: 20.0,
            mesh_deliveries_activation: Duration::from_secs(30),
            mesh_deliveries_window: Duration::from_millis(50),
            invalid_weight: -10.0,
            invalid_decay: 0.99,
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
    /// Checks signs and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let decay = |d: f64| d > 0.0 && d < 1.0;
        let checks: [(bool, &'static str); 10] = [
            (self.time_in_mesh_weight >= 0.0, "time_in_mesh_weight"),
            (
                self.first_deliveries_weight >= 0.0,
                "first_deliveries_weight",
            ),
            (self.mesh_deliveries_weight <= 0.0, "mesh_deliveries_weight"),
            (self.invalid_weight <= 0.0, "invalid_weight"),
            (self.ip_colocation_weight <= 0.0, "ip_colocation_weight"),
            (
                self.behaviour_penalty_weight <= 0.0,
                "behaviour_penalty_weight",
            ),
            (decay(self.first_deliveries_decay), "first_deliveries_decay"),
            (decay(self.mesh_deliveries_decay), "mesh_deliveries_decay"),
            (
                decay(self.invalid_decay) && decay(self.behaviour_penalty_decay),
                "invalid_decay",
            ),
            (
                !self.decay_interval.is_zero() && !self.time_in_mesh_quantum.is_zero(),
                "decay_interval",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, name)) => Err(ConfigError::Score(name)),
            None => Ok(()),
        }
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
    graft_time: Time,
    mesh_time: Duration,
    first_deliveries: f64,
    mesh_deliveries: f64,
    mesh_active: bool,
    invalid: f64,
}

#[derive(Debug, Default)]
struct PeerStats {
    connected: bool,
    expire: Time,
    ip: Option<IpAddr>,
    topics: BTreeMap<Topic, TopicStats>,
    behaviour_penalty: f64,
    app_score: f64,
}

#[derive(Debug)]
struct Delivery {
    first: Time,
    topic: Topic,
    credited: Vec<PeerId>,
}

/// Most delivery records kept (for P3's near-first duplicates).
const MAX_DELIVERY_RECORDS: usize = 65_536;

/// The scores of every peer we know.
#[derive(Debug)]
pub struct PeerScore {
    p: ScoreParams,
    peers: HashMap<PeerId, PeerStats>,
    ips: HashMap<IpAddr, BTreeSet<PeerId>>,
    deliveries: HashMap<MessageId, Delivery>,
    delivery_order: VecDeque<(MessageId, Time)>,
    last_decay: Time,
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

    /// The current score of `peer` (0 for unknown peers).
    pub fn score(&self, peer: &PeerId, now: Time) -> f64 {
        let Some(s) = self.peers.get(peer) else {
            return 0.0;
        };
        let p = &self.p;
        let mut total = 0.0;
        for t in s.topics.values() {
            let mesh_time = if t.in_mesh {
                t.mesh_time + now.saturating_sub(t.graft_time)
            } else {
                t.mesh_time
            };
            if t.in_mesh {
                let q = mesh_time.as_secs_f64() / p.time_in_mesh_quantum.as_secs_f64();
                total += p.time_in_mesh_weight * q.min(p.time_in_mesh_cap);
            }
            total += p.first_deliveries_weight * t.first_deliveries;
            if t.mesh_active && t.mesh_deliveries < p.mesh_deliveries_threshold {
                let deficit = p.mesh_deliveries_threshold - t.mesh_deliveries;
                total += p.mesh_deliveries_weight * deficit * deficit;
            }
            total += p.invalid_weight * t.invalid * t.invalid;
        }
        total += p.app_weight * s.app_score;
        if let Some(ip) = s.ip {
            if !(p.ip_colocation_exempt_loopback && ip.is_loopback()) {
                let n = self.ips.get(&ip).map_or(0, |set| set.len());
                if n > p.ip_colocation_threshold {
                    let surplus = (n - p.ip_colocation_threshold) as f64;
                    total += p.ip_colocation_weight * surplus * surplus;
                }
            }
        }
        if s.behaviour_penalty > p.behaviour_penalty_threshold {
            let excess = s.behaviour_penalty - p.behaviour_penalty_threshold;
            total += p.behaviour_penalty_weight * excess * excess;
        }
        total
    }

    /// The score without the application component (the callback's input).
    pub fn base_score(&self, peer: &PeerId, now: Time) -> f64 {
        let app = self.peers.get(peer).map_or(0.0, |s| s.app_score);
        self.score(peer, now) - self.p.app_weight * app
    }

    /// A peer connected from `ip`.
    pub fn add_peer(&mut self, peer: PeerId, ip: IpAddr) {
        let s = self.peers.entry(peer).or_default();
        s.connected = true;
        if let Some(old) = s.ip.replace(ip) {
            if let Some(set) = self.ips.get_mut(&old) {
                set.remove(&peer);
            }
        }
        self.ips.entry(ip).or_default().insert(peer);
    }

    /// A peer disconnected; its score is retained for a while.
    pub fn remove_peer(&mut self, peer: &PeerId, now: Time) {
        let Some(s) = self.peers.get_mut(peer) else {
            return;
        };
        if let Some(ip) = s.ip.take() {
            if let Some(set) = self.ips.get_mut(&ip) {
                set.remove(peer);
                if set.is_empty() {
                    self.ips.remove(&ip);
                }
            }
        }
        for t in s.topics.values_mut() {
            if t.in_mesh {
                t.mesh_time += now.saturating_sub(t.graft_time);
                t.in_mesh = false;
            }
        }
        s.connected = false;
        s.expire = now + self.p.retain_score;
    }

    /// Sets the P5 input of a peer.
    pub fn set_app_score(&mut self, peer: &PeerId, v: f64) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.app_score = if v.is_finite() { v } else { 0.0 };
        }
    }

    /// The peer joined our mesh for `topic`.
    pub fn graft(&mut self, peer: &PeerId, topic: &Topic, now: Time) {
        if let Some(s) = self.peers.get_mut(peer) {
            let t = s.topics.entry(topic.clone()).or_default();
            t.in_mesh = true;
            t.graft_time = now;
            t.mesh_time = Duration::ZERO;
            t.mesh_active = false;
        }
    }

    /// The peer left our mesh for `topic`.
    pub fn prune(&mut self, peer: &PeerId, topic: &str, now: Time) {
        if let Some(t) = self
            .peers
            .get_mut(peer)
            .and_then(|s| s.topics.get_mut(topic))
        {
            if t.in_mesh {
                t.mesh_time += now.saturating_sub(t.graft_time);
            }
            t.in_mesh = false;
            t.mesh_active = false;
        }
    }

    /// Adds P7 penalty.
    pub fn add_penalty(&mut self, peer: &PeerId, n: f64) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.behaviour_penalty += n;
        }
    }

    /// An invalid message on `topic` came from `peer` (P4).
    pub fn invalid_message(&mut self, peer: &PeerId, topic: &Topic) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.topics.entry(topic.clone()).or_default().invalid += 1.0;
        }
    }

    /// `peer` delivered message `id` first (P2, and P3 when in mesh).
    pub fn first_delivery(&mut self, peer: &PeerId, id: MessageId, topic: &Topic, now: Time) {
        self.credit(peer, topic, true);
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
                credited: vec![*peer],
            },
        );
        self.delivery_order.push_back((id, now));
    }

    /// `peer` delivered a copy of `id` again; near-first copies from mesh
    /// peers still count for P3.
    pub fn duplicate(&mut self, peer: &PeerId, id: &MessageId, now: Time) {
        let window = self.p.mesh_deliveries_window;
        let Some(d) = self.deliveries.get_mut(id) else {
            return;
        };
        if d.credited.contains(peer) || now.saturating_sub(d.first) > window {
            return;
        }
        d.credited.push(*peer);
        let topic = d.topic.clone();
        self.credit(peer, &topic, false);
    }

    fn credit(&mut self, peer: &PeerId, topic: &Topic, first: bool) {
        let p = &self.p;
        if let Some(s) = self.peers.get_mut(peer) {
            let t = s.topics.entry(topic.clone()).or_default();
            if first {
                t.first_deliveries = (t.first_deliveries + 1.0).min(p.first_deliveries_cap);
            }
            if t.in_mesh {
                t.mesh_deliveries = (t.mesh_deliveries + 1.0).min(p.mesh_deliveries_cap);
            }
        }
    }

    /// Decays counters, activates P3, forgets expired peers and records.
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
        self.peers.retain(|_, s| s.connected || now < s.expire);
        for s in self.peers.values_mut() {
            dec(&mut s.behaviour_penalty, p.behaviour_penalty_decay);
            for t in s.topics.values_mut() {
                dec(&mut t.first_deliveries, p.first_deliveries_decay);
                dec(&mut t.mesh_deliveries, p.mesh_deliveries_decay);
                dec(&mut t.invalid, p.invalid_decay);
                if t.in_mesh && now.saturating_sub(t.graft_time) >= p.mesh_deliveries_activation {
                    t.mesh_active = true;
                }
            }
            s.topics.retain(|_, t| {
                t.in_mesh || t.first_deliveries > 0.0 || t.invalid > 0.0 || t.mesh_deliveries > 0.0
            });
        }
        let horizon = Duration::from_secs(5).max(p.mesh_deliveries_window);
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
        self.ips.get(ip).map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Time {
        Duration::from_secs(s)
    }

    #[test]
    fn components_move_the_score_the_right_way() {
        let mut s = PeerScore::new(ScoreParams::default());
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
        let mut s = PeerScore::new(ScoreParams::default());
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
        let mut s = PeerScore::new(ScoreParams::default());
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
}
