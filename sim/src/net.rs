//! The event loop: nodes, a virtual clock, and datagrams in flight.

use crate::rng::SimRng;
use moss_mesh::{Config, Event, Identity, Node, PublishError, Stats, Time};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

/// How datagrams travel between two nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkModel {
    /// Least one-way latency of any link.
    pub base_latency: Duration,
    /// Each link adds a fixed extra latency uniform in `0..spread`.
    pub latency_spread: Duration,
    /// Each datagram adds a delay uniform in `0..jitter` (reorders).
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Uplink of every node in bits per second (0 = unlimited): datagrams
    /// leave a node one after another.
    pub uplink_bps: u64,
}

impl Default for LinkModel {
    fn default() -> Self {
        Self {
            base_latency: Duration::from_millis(10),
            latency_spread: Duration::from_millis(90),
            jitter: Duration::from_millis(5),
            loss: 0.0,
            uplink_bps: 50_000_000,
        }
    }
}

/// A message delivered to a node's application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Receiving node.
    pub node: usize,
    /// Message id.
    pub id: [u8; 32],
    /// Virtual time of delivery.
    pub at: Time,
    /// Links travelled.
    pub hops: u8,
}

/// One simulated node.
pub struct SimNode {
    /// The node, `None` once it left.
    pub node: Option<Node>,
    /// Its address.
    pub addr: SocketAddr,
    timer: Option<Time>,
    uplink_free: Time,
}

enum Kind {
    Packet {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Timer(usize),
}

struct Ev {
    at: Time,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (time, sequence).
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulator.
pub struct Sim {
    /// Virtual time.
    pub now: Time,
    /// Every node ever added (index = node id).
    pub nodes: Vec<SimNode>,
    /// Link behaviour.
    pub link: LinkModel,
    /// Deliveries so far.
    pub deliveries: Vec<Delivery>,
    /// Datagrams sent, lost in flight, and bytes sent.
    pub datagrams: (u64, u64, u64),
    /// Counters of nodes that left (their live counters are gone).
    pub retired: Stats,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Ev>,
    seq: u64,
    rng: SimRng,
    link_salt: u64,
    fingerprint: u64,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Sim {
    /// An empty network.
    pub fn new(seed: u64, link: LinkModel) -> Self {
        let mut rng = SimRng::new(seed);
        let link_salt = rng.next_u64();
        Self {
            now: Time::ZERO,
            nodes: Vec::new(),
            link,
            deliveries: Vec::new(),
            datagrams: (0, 0, 0),
            retired: Stats::default(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng,
            link_salt,
            fingerprint: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// A hash of every datagram sent so far (time, endpoints, bytes): equal
    /// for equal runs.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Adds a node at `addr`; it starts now.
    pub fn add_node(&mut self, cfg: Config, identity: Identity, addr: SocketAddr) -> usize {
        let seed = self.rng.seed32();
        let node = Node::new(cfg, identity, "sim", None, seed, self.now);
        let i = self.nodes.len();
        self.nodes.push(SimNode {
            node: Some(node),
            addr,
            timer: None,
            uplink_free: self.now,
        });
        self.by_addr.insert(addr, i);
        self.after(i);
        i
    }

    /// True while node `i` is in the network.
    pub fn online(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.node.is_some())
    }

    /// The node, if online.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).and_then(|n| n.node.as_ref())
    }

    /// Runs `f` on an online node and processes its output.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Time) -> R) -> Option<R> {
        let now = self.now;
        let r = f(self.nodes.get_mut(i)?.node.as_mut()?, now);
        self.after(i);
        Some(r)
    }

    /// Node `i` dials node `j`.
    pub fn dial(&mut self, i: usize, j: usize) {
        if let Some(addr) = self.nodes.get(j).map(|n| n.addr) {
            self.with_node(i, |n, _| n.connect(addr));
        }
    }

    /// Node `i` publishes.
    pub fn publish(
        &mut self,
        i: usize,
        topic: &str,
        data: &[u8],
    ) -> Option<Result<[u8; 32], PublishError>> {
        self.with_node(i, |n, now| n.publish(now, topic, data))
    }

    /// Node `i` leaves without a word (crash or network loss).
    pub fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i).and_then(|n| n.node.take()) {
            self.retired.merge(n.stats());
        }
    }

    /// Sum of the counters of every node, online or retired.
    pub fn total_stats(&self) -> Stats {
        let mut s = self.retired.clone();
        for n in self.nodes.iter().filter_map(|n| n.node.as_ref()) {
            s.merge(n.stats());
        }
        s
    }

    fn link_latency(&self, a: usize, b: usize) -> Duration {
        let (x, y) = (a.min(b) as u64, a.max(b) as u64);
        let h = crate::rng::derive(self.link_salt, x.wrapping_mul(0x1_0000_0001) ^ y);
        let spread = self.link.latency_spread.as_nanos() as u64;
        self.link.base_latency + Duration::from_nanos(if spread == 0 { 0 } else { h % spread })
    }

    fn push(&mut self, at: Time, kind: Kind) {
        self.seq += 1;
        self.queue.push(Ev {
            at,
            seq: self.seq,
            kind,
        });
    }

    /// Collects node `i`'s output: datagrams into flight, events into
    /// deliveries, and its next timer.
    fn after(&mut self, i: usize) {
        let now = self.now;
        let Some(sn) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(node) = sn.node.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = node.poll_event() {
            if let Event::Message(m) = e {
                self.deliveries.push(Delivery {
                    node: i,
                    id: m.id,
                    at: now,
                    hops: m.hops,
                });
            }
        }
        let next = node.poll_timeout().max(now);
        let reschedule = sn.timer != Some(next);
        sn.timer = Some(next);
        let from = sn.addr;
        // The node's own order across destinations may follow hash maps;
        // a stable sort by destination makes the run independent of it.
        out.sort_by_key(|t| t.to);
        for t in out {
            let bytes = t.bytes;
            self.datagrams.0 += 1;
            self.datagrams.2 += bytes.len() as u64;
            self.fingerprint = fnv(self.fingerprint, &now.as_nanos().to_le_bytes());
            let to_ip = match t.to.ip() {
                std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
                std::net::IpAddr::V6(ip) => ip.octets(),
            };
            self.fingerprint = fnv(self.fingerprint, &to_ip);
            self.fingerprint = fnv(self.fingerprint, &t.to.port().to_le_bytes());
            self.fingerprint = fnv(self.fingerprint, &bytes);
            let depart = {
                let sn = &mut self.nodes[i];
                let start = sn.uplink_free.max(now);
                // 28 bytes of IP and UDP headers per datagram.
                let ser = ((bytes.len() as u64 + 28) * 8 * 1_000_000_000)
                    .checked_div(self.link.uplink_bps)
                    .map_or(Duration::ZERO, Duration::from_nanos);
                sn.uplink_free = start + ser;
                sn.uplink_free
            };
            if self.link.loss > 0.0 && self.rng.unit() < self.link.loss {
                self.datagrams.1 += 1;
                continue;
            }
            let Some(&j) = self.by_addr.get(&t.to) else {
                continue;
            };
            let jitter = self.link.jitter.as_nanos() as u64;
            let jit = if jitter == 0 {
                0
            } else {
                self.rng.below(jitter)
            };
            let at = depart + self.link_latency(i, j) + Duration::from_nanos(jit);
            self.push(at, Kind::Packet { to: j, from, bytes });
        }
        if reschedule {
            self.push(next, Kind::Timer(i));
        }
    }

    /// Runs until virtual time `end`.
    pub fn run_until(&mut self, end: Time) {
        while let Some(ev) = self.queue.peek() {
            if ev.at > end {
                break;
            }
            let Some(ev) = self.queue.pop() else {
                break;
            };
            self.now = ev.at.max(self.now);
            match ev.kind {
                Kind::Packet {
                    to,
                    from,
                    mut bytes,
                } => {
                    let now = self.now;
                    if let Some(n) = self.nodes.get_mut(to).and_then(|n| n.node.as_mut()) {
                        n.handle_datagram(now, from, &mut bytes);
                        n.recycle(bytes);
                        self.after(to);
                    }
                }
                Kind::Timer(i) => {
                    let now = self.now;
                    let due = self.nodes.get(i).and_then(|n| n.timer);
                    if due != Some(ev.at) {
                        continue;
                    }
                    if let Some(n) = self.nodes.get_mut(i).and_then(|n| n.node.as_mut()) {
                        n.handle_timeout(now);
                        self.after(i);
                    }
                }
            }
        }
        self.now = self.now.max(end);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }
}
