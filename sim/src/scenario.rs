//! Scenarios: a population of honest nodes with topics, a rendezvous
//! model, churn, optional attackers, a publish phase, and the report.

use crate::metrics::{quantile, Report};
use crate::nat::NatKind;
use crate::net::{LinkModel, Sim};
use crate::rng::{derive, SimRng};
use moss_mesh::pubsub::Adversary;
use moss_mesh::{Config, DropReason, Identity};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Attackers added to a scenario (the GossipSub v1.1 evaluation's attacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// No attackers.
    None,
    /// `identities` fresh identities from `ips` addresses, subscribed to
    /// every topic, each dialling `dials` honest nodes; they accept grafts
    /// and never forward (black holes).
    Sybil {
        /// Sybil identities.
        identities: usize,
        /// Distinct IPs they come from.
        ips: usize,
        /// Honest nodes each dials.
        dials: usize,
    },
    /// `attackers` black holes with distinct IPs, all dialling one honest
    /// target (node 0) and subscribed to its topics.
    Eclipse {
        /// Attackers.
        attackers: usize,
    },
    /// `spammers` nodes connected to `dials` honest nodes each, sending
    /// `messages` forged-signature messages each during the publish phase.
    InvalidSpam {
        /// Spammers.
        spammers: usize,
        /// Honest nodes each dials.
        dials: usize,
        /// Invalid messages each sends.
        messages: usize,
    },
}

/// Honest nodes behind NATs (one node per NAT, each NAT with its own
/// public IP).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NatModel {
    /// Fraction of honest nodes behind a NAT.
    pub fraction: f64,
    /// Their NAT kind; `None` gives each NATed node one of the four kinds
    /// at random.
    pub kind: Option<NatKind>,
    /// Idle time after which a NAT mapping lapses.
    pub timeout: Duration,
}

impl Default for NatModel {
    fn default() -> Self {
        Self {
            fraction: 0.0,
            kind: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A run's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Seed of every random choice.
    pub seed: u64,
    /// Honest nodes at the start.
    pub nodes: usize,
    /// Topics.
    pub topics: usize,
    /// Topics each node subscribes to.
    pub topics_per_node: usize,
    /// Subscribers of each of its topics a node dials at the start.
    pub topic_dials: usize,
    /// Random nodes a node dials at the start.
    pub random_dials: usize,
    /// Link model.
    pub link: LinkModel,
    /// Fraction of honest nodes that leave during the publish phase.
    pub churn_leave: f64,
    /// Fraction (of `nodes`) of new nodes that join during the publish phase.
    pub churn_join: f64,
    /// Messages published per topic.
    pub messages_per_topic: usize,
    /// Payload bytes per message.
    pub message_size: usize,
    /// Time for sessions and meshes to form before publishing.
    pub warmup: Duration,
    /// Publishes (and churn) are spread over this window.
    pub publish_window: Duration,
    /// Time after the window for repairs before counting.
    pub drain: Duration,
    /// IDONTWANT on or off.
    pub idontwant: bool,
    /// Rendezvous model: this often, a node whose mesh of a topic is below
    /// D_lo dials two online subscribers of it (what trackers give a node).
    pub rendezvous_interval: Duration,
    /// Attackers.
    pub attack: Attack,
    /// NATs in front of honest nodes.
    pub nat: NatModel,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            seed: 1,
            nodes: 1000,
            topics: 20,
            topics_per_node: 3,
            topic_dials: 3,
            random_dials: 2,
            link: LinkModel::default(),
            churn_leave: 0.0,
            churn_join: 0.0,
            messages_per_topic: 3,
            message_size: 256,
            warmup: Duration::from_secs(10),
            publish_window: Duration::from_secs(20),
            drain: Duration::from_secs(15),
            idontwant: true,
            rendezvous_interval: Duration::from_secs(5),
            attack: Attack::None,
            nat: NatModel::default(),
        }
    }
}

/// Public address of honest node `i`.
pub fn honest_addr(i: usize) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8),
        4000,
    ))
}

/// Private address of honest node `i` behind its NAT.
pub fn private_addr(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(192, 168, (i >> 8) as u8, i as u8), 4000))
}

/// Public IP of the NAT in front of honest node `i`: in 198.18.0.0/15
/// (RFC 2544 benchmarking space), not 100.64.0.0/10, which is RFC 6598
/// carrier-grade NAT space and makes every NATed node conclude `cgnat`
/// (MOSS.md: a mapped address there means CGNAT).
pub fn nat_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        198,
        18 + ((i >> 16) & 1) as u8,
        (i >> 8) as u8,
        i as u8,
    ))
}

fn attacker_addr(ip: usize, port: usize) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::new(172, 16 + (ip >> 16) as u8, (ip >> 8) as u8, ip as u8),
        10_000 + port as u16,
    ))
}

struct Pub {
    at: Duration,
    topic: usize,
    node: usize,
}

/// Forged messages on one topic that bring a sender below the graylist
/// threshold with the default P4 weight (−10 · n² < −10,000).
pub const SPAM_GRAYLIST: u64 = 32;

/// A scenario being run.
struct Run {
    sc: Scenario,
    sim: Sim,
    rng: SimRng,
    /// NAT choices (a stream of their own: runs without NATs are unchanged).
    nat_rng: SimRng,
    cfg: Config,
    /// Topics of each honest node (index = node id; attackers have none).
    topics_of: Vec<Vec<usize>>,
    /// Honest subscribers of each topic, online or not, in node order.
    subs_of: Vec<Vec<usize>>,
    honest: Vec<bool>,
    left: HashSet<usize>,
    joined: HashSet<usize>,
}

fn topic_name(t: usize) -> String {
    format!("topic-{t}")
}

impl Run {
    fn new(sc: Scenario) -> Self {
        let mut cfg = Config::default();
        cfg.gossipsub.idontwant = sc.idontwant;
        cfg.max_peers = 400;
        Self {
            sim: Sim::new(derive(sc.seed, 1), sc.link.clone()),
            rng: SimRng::new(derive(sc.seed, 2)),
            nat_rng: SimRng::new(derive(sc.seed, 3)),
            cfg,
            topics_of: Vec::new(),
            subs_of: vec![Vec::new(); sc.topics],
            honest: Vec::new(),
            left: HashSet::new(),
            joined: HashSet::new(),
            sc,
        }
    }

    fn identity(&mut self) -> Identity {
        Identity::from_seed(self.rng.seed32())
    }

    fn add_honest(&mut self) -> usize {
        let id = self.identity();
        let i = self.sim.nodes.len();
        let model = self.sc.nat;
        let n = if model.fraction > 0.0 && self.nat_rng.unit() < model.fraction {
            let kind = model.kind.unwrap_or_else(|| {
                NatKind::ALL[self.nat_rng.below(NatKind::ALL.len() as u64) as usize]
            });
            self.sim.add_node_behind_nat(
                self.cfg.clone(),
                id,
                private_addr(i),
                kind,
                nat_ip(i),
                model.timeout,
            )
        } else {
            self.sim.add_node(self.cfg.clone(), id, honest_addr(i))
        };
        if model.fraction > 0.0 {
            // With NATs in the run, nodes know their interface address, so
            // they classify themselves and punch (as the engine's do).
            let local = if self.sim.nat_kind(n).is_some() {
                private_addr(i)
            } else {
                honest_addr(i)
            };
            self.sim
                .with_node(n, |node, _| node.set_local_addrs(&[local]));
        }
        let topics = self.rng.sample(self.sc.topics, self.sc.topics_per_node);
        for &t in &topics {
            self.sim
                .with_node(n, |node, _| node.subscribe(&topic_name(t)));
            self.subs_of[t].push(n);
        }
        self.topics_of.push(topics);
        self.honest.push(true);
        n
    }

    fn add_attacker(&mut self, addr: SocketAddr, topics: &[usize], a: Adversary) -> usize {
        let id = self.identity();
        let n = self.sim.add_node(self.cfg.clone(), id, addr);
        self.sim.with_node(n, |node, _| {
            node.set_adversary(a);
            for &t in topics {
                node.subscribe(&topic_name(t));
            }
        });
        self.topics_of.push(Vec::new());
        self.honest.push(false);
        n
    }

    /// Online honest subscribers of topic `t`, in node order.
    fn subscribers(&self, t: usize) -> Vec<usize> {
        self.subs_of[t]
            .iter()
            .copied()
            .filter(|&i| self.sim.online(i))
            .collect()
    }

    fn bootstrap(&mut self, i: usize) {
        let topics = self.topics_of[i].clone();
        for t in topics {
            let subs: Vec<usize> = self
                .subscribers(t)
                .into_iter()
                .filter(|&j| j != i)
                .collect();
            for k in self.rng.sample(subs.len(), self.sc.topic_dials) {
                self.sim.dial(i, subs[k]);
            }
        }
        let n = self.sim.nodes.len();
        for _ in 0..self.sc.random_dials {
            let j = self.rng.below(n as u64) as usize;
            if j != i && self.honest[j] && self.sim.online(j) {
                self.sim.dial(i, j);
            }
        }
    }

    fn rendezvous(&mut self) {
        let d_lo = self.cfg.gossipsub.d_lo as usize;
        // Dials change no one's presence: each topic's list holds for the
        // whole round.
        let online: Vec<Vec<usize>> = (0..self.sc.topics).map(|t| self.subscribers(t)).collect();
        for i in 0..self.topics_of.len() {
            if !self.honest[i] || !self.sim.online(i) {
                continue;
            }
            for t in self.topics_of[i].clone() {
                let have = self
                    .sim
                    .node(i)
                    .map_or(0, |n| n.mesh_peers(&topic_name(t)).len());
                if have >= d_lo {
                    continue;
                }
                let subs: Vec<usize> = online[t].iter().copied().filter(|&j| j != i).collect();
                for k in self.rng.sample(subs.len(), 2) {
                    self.sim.dial(i, subs[k]);
                }
            }
        }
    }

    /// Runs to `end`, with rendezvous rounds on their schedule.
    fn advance(&mut self, end: Duration, next_rdv: &mut Duration) {
        while *next_rdv <= end {
            self.sim.run_until(*next_rdv);
            self.rendezvous();
            *next_rdv += self.sc.rendezvous_interval;
        }
        self.sim.run_until(end);
    }

    fn add_attackers(&mut self) -> (Vec<usize>, Option<usize>) {
        let all: Vec<usize> = (0..self.sc.topics).collect();
        let honest_n = self.sc.nodes;
        let mut attackers = Vec::new();
        match self.sc.attack {
            Attack::None => return (attackers, None),
            Attack::Sybil {
                identities,
                ips,
                dials,
            } => {
                for s in 0..identities {
                    let a = self.add_attacker(
                        attacker_addr(s % ips.max(1), s),
                        &all,
                        Adversary { black_hole: true },
                    );
                    for k in self.rng.sample(honest_n, dials) {
                        self.sim.dial(a, k);
                    }
                    attackers.push(a);
                }
            }
            Attack::Eclipse { attackers: n } => {
                let target_topics = self.topics_of[0].clone();
                for s in 0..n {
                    let a = self.add_attacker(
                        attacker_addr(s, 0),
                        &target_topics,
                        Adversary { black_hole: true },
                    );
                    self.sim.dial(a, 0);
                    attackers.push(a);
                }
                return (attackers, Some(0));
            }
            Attack::InvalidSpam {
                spammers, dials, ..
            } => {
                for s in 0..spammers {
                    let a = self.add_attacker(attacker_addr(s, 0), &all, Adversary::default());
                    for k in self.rng.sample(honest_n, dials) {
                        self.sim.dial(a, k);
                    }
                    attackers.push(a);
                }
            }
        }
        (attackers, None)
    }
}

impl Scenario {
    /// Runs the scenario and reports.
    pub fn run(&self) -> Report {
        self.run_inspect(|_| {})
    }

    /// Runs the scenario, lets `inspect` look at the network at the end
    /// (before it is dropped), and reports.
    pub fn run_inspect(&self, inspect: impl FnOnce(&Sim)) -> Report {
        let sc = self.clone();
        let mut r = Run::new(sc.clone());
        for _ in 0..sc.nodes {
            r.add_honest();
        }
        for i in 0..sc.nodes {
            r.bootstrap(i);
        }
        let (attackers, target) = r.add_attackers();
        let mut next_rdv = sc.rendezvous_interval;
        r.advance(sc.warmup, &mut next_rdv);

        // Plan churn and publishes. Leavers never include the eclipse
        // target; publishers are nodes that stay.
        let leavers = if sc.churn_leave > 0.0 {
            let n = (sc.nodes as f64 * sc.churn_leave).round() as usize;
            r.rng
                .sample(sc.nodes, n + 1)
                .into_iter()
                .filter(|&i| Some(i) != target)
                .take(n)
                .collect()
        } else {
            Vec::new()
        };
        let leaving: HashSet<usize> = leavers.iter().copied().collect();
        let window = sc.publish_window.as_nanos() as u64;
        let at = |rng: &mut SimRng| sc.warmup + Duration::from_nanos(rng.below(window.max(1)));
        let mut plan: Vec<(Duration, u8, usize)> = Vec::new(); // (time, kind, arg)
        for &l in &leavers {
            plan.push((at(&mut r.rng), 0, l));
        }
        let joins = (sc.nodes as f64 * sc.churn_join).round() as usize;
        for _ in 0..joins {
            plan.push((at(&mut r.rng), 1, 0));
        }
        let mut pubs: Vec<Pub> = Vec::new();
        for t in 0..sc.topics {
            let stay: Vec<usize> = r
                .subscribers(t)
                .into_iter()
                .filter(|i| !leaving.contains(i))
                .collect();
            if stay.is_empty() {
                continue;
            }
            for _ in 0..sc.messages_per_topic {
                let node = stay[r.rng.below(stay.len() as u64) as usize];
                pubs.push(Pub {
                    at: at(&mut r.rng),
                    topic: t,
                    node,
                });
            }
        }
        for (k, p) in pubs.iter().enumerate() {
            plan.push((p.at, 2, k));
        }
        if let Attack::InvalidSpam { messages, .. } = sc.attack {
            for &a in &attackers {
                for m in 0..messages {
                    let t = sc.warmup + sc.publish_window * m as u32 / messages.max(1) as u32;
                    plan.push((t, 3, a));
                }
            }
        }
        plan.sort_by_key(|p| (p.0, p.1, p.2));

        let bytes_before = honest_bytes(&r);
        let mut published: Vec<Option<([u8; 32], Duration)>> = vec![None; pubs.len()];
        let mut spam_seq = 0u64;
        for (t, kind, arg) in plan {
            r.advance(t, &mut next_rdv);
            match kind {
                0 => {
                    r.sim.kill(arg);
                    r.left.insert(arg);
                }
                1 => {
                    let n = r.add_honest();
                    r.joined.insert(n);
                    r.bootstrap(n);
                }
                2 => {
                    let p = &pubs[arg];
                    let mut data = vec![0u8; sc.message_size];
                    for (k, b) in data.iter_mut().enumerate() {
                        *b = (k as u8) ^ (arg as u8);
                    }
                    data[..8.min(sc.message_size)]
                        .copy_from_slice(&(arg as u64).to_le_bytes()[..8.min(sc.message_size)]);
                    let res = r.sim.publish(p.node, &topic_name(p.topic), &data);
                    if let Some(Ok(id)) = res {
                        published[arg] = Some((id, r.sim.now));
                    }
                }
                _ => {
                    spam_seq += 1;
                    let topic = topic_name((spam_seq as usize) % sc.topics);
                    let data = spam_seq.to_le_bytes();
                    r.sim
                        .with_node(arg, |n, now| n.publish_invalid(now, &topic, &data));
                }
            }
        }
        let end = sc.warmup + sc.publish_window + sc.drain;
        r.advance(end, &mut next_rdv);
        let bytes_after = honest_bytes(&r);
        inspect(&r.sim);
        report(
            &r,
            &pubs,
            &published,
            target,
            &attackers,
            bytes_after - bytes_before,
        )
    }
}

fn honest_bytes(r: &Run) -> u64 {
    let mut b = 0;
    for (i, sn) in r.sim.nodes.iter().enumerate() {
        if r.honest.get(i) == Some(&true) {
            if let Some(n) = &sn.node {
                b += n.stats().bytes_out;
            }
        }
    }
    // Nodes that left took their counters with them; count them as retired.
    b + r.sim.retired.bytes_out
}

fn report(
    r: &Run,
    pubs: &[Pub],
    published: &[Option<([u8; 32], Duration)>],
    target: Option<usize>,
    attackers: &[usize],
    bytes: u64,
) -> Report {
    let sc = &r.sc;
    let index: HashMap<[u8; 32], usize> = published
        .iter()
        .enumerate()
        .filter_map(|(k, p)| p.map(|(id, _)| (id, k)))
        .collect();
    let mut got: HashSet<(usize, usize)> = HashSet::new();
    let mut hops = Vec::new();
    let mut lat = Vec::new();
    let mut honest_deliveries = 0usize;
    for d in &r.sim.deliveries {
        if !r.honest.get(d.node).copied().unwrap_or(false) {
            continue;
        }
        let Some(&k) = index.get(&d.id) else {
            continue;
        };
        honest_deliveries += 1;
        got.insert((d.node, k));
        hops.push(d.hops);
        if let Some((_, t0)) = published[k] {
            lat.push((d.at - t0).as_secs_f64() * 1000.0);
        }
    }
    hops.sort_unstable();
    lat.sort_by(f64::total_cmp);
    let mut expected = 0;
    let mut delivered = 0;
    let mut missing = Vec::new();
    let mut tgt = (0, 0);
    let class = |i: usize| r.sim.nat_kind(i).map_or("public", |k| k.name());
    let mut classes: Vec<(String, usize, usize)> = Vec::new();
    for (k, p) in pubs.iter().enumerate() {
        if published[k].is_none() {
            continue;
        }
        for i in 0..sc.nodes {
            if i == p.node || r.left.contains(&i) || !r.topics_of[i].contains(&p.topic) {
                continue;
            }
            expected += 1;
            let ok = got.contains(&(i, k));
            if ok {
                delivered += 1;
            } else if missing.len() < 10 {
                missing.push((i, k));
            }
            if sc.nat.fraction > 0.0 {
                let c = class(i);
                match classes.iter_mut().find(|e| e.0 == c) {
                    Some(e) => {
                        e.1 += usize::from(ok);
                        e.2 += 1;
                    }
                    None => classes.push((c.to_string(), usize::from(ok), 1)),
                }
            }
            if Some(i) == target {
                tgt.0 += usize::from(ok);
                tgt.1 += 1;
            }
        }
    }
    let mut dups = 0u64;
    for (i, sn) in r.sim.nodes.iter().enumerate() {
        if r.honest.get(i) == Some(&true) {
            if let Some(n) = &sn.node {
                dups += n.stats().messages_duplicate;
            }
        }
    }
    dups += r.sim.retired.messages_duplicate;
    let delivered_bytes = (honest_deliveries * sc.message_size).max(1) as f64;
    let graylisted = if let Attack::InvalidSpam { .. } = sc.attack {
        // Only spammers send forged messages. P4 is quadratic per topic:
        // about 32 forged messages on one topic graylist their sender, fewer
        // already put it below the gossip and publish thresholds.
        let (mut g, mut heavy, mut excluded, mut hit) = (0, 0, 0, 0);
        let graylist = moss_gossip::Thresholds::default().graylist;
        for (i, sn) in r.sim.nodes.iter().enumerate() {
            if r.honest.get(i) != Some(&true) {
                continue;
            }
            let Some(node) = &sn.node else { continue };
            let drops = &node.stats().drops;
            let forged = drops.get(DropReason::InvalidMessage);
            if forged == 0 {
                continue;
            }
            hit += 1;
            let worst = attackers
                .iter()
                .filter_map(|&a| r.sim.node(a))
                .map(|att| node.peer_score(&att.public_key()))
                .fold(f64::INFINITY, f64::min);
            if worst < -100.0 {
                excluded += 1;
            }
            if forged >= SPAM_GRAYLIST {
                heavy += 1;
            }
            // Graylisted: the router refused the spammer's input at some
            // point, or its score is below the threshold now (a node whose
            // spammer went quiet after the threshold counts no drop).
            if drops.get(DropReason::Graylisted) > 0 || worst < graylist {
                g += 1;
            }
        }
        Some(((g, heavy), (excluded, hit)))
    } else {
        None
    };
    Report {
        seed: sc.seed,
        nodes: sc.nodes,
        messages: published.iter().filter(|p| p.is_some()).count(),
        expected,
        delivered,
        missing,
        hops: (
            quantile(&hops, 0.5),
            quantile(&hops, 0.99),
            hops.last().copied().unwrap_or(0),
        ),
        latency_ms: (
            quantile(&lat, 0.5),
            quantile(&lat, 0.99),
            lat.last().copied().unwrap_or(0.0),
        ),
        duplicates_per_delivery: dups as f64 / honest_deliveries.max(1) as f64,
        bytes_per_delivered_byte: bytes as f64 / delivered_bytes,
        duplicate_bytes_ratio: (dups as f64 * sc.message_size as f64) / delivered_bytes,
        datagrams: (r.sim.datagrams.0, r.sim.datagrams.1),
        target: target.map(|_| tgt),
        graylisted,
        churn: (r.left.len(), r.joined.len()),
        classes: {
            classes.sort();
            classes
        },
        nat: (sc.nat.fraction > 0.0).then(|| r.sim.nat_stats()),
        punches: if sc.nat.fraction > 0.0 {
            crate::metrics::punch_rows(&r.sim)
        } else {
            Vec::new()
        },
        handshakes: {
            let s = r.sim.total_stats();
            (s.handshakes_completed, s.handshakes_failed)
        },
        fingerprint: r.sim.fingerprint(),
    }
}
