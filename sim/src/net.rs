//! The event loop: nodes, a virtual clock, datagrams in flight, and NATs.

use crate::nat::{Nat, NatKind, NatStats};
use crate::queue::{Calendar, Ev};
use crate::rng::SimRng;
use moss_mesh::{Config, Event, Identity, Node, PublishError, Stats, Time, Transmit};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A small, fast, deterministic hasher (FxHash) for the simulator's own
/// lookup tables; they are never iterated in an order that matters.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map keyed with [`FxHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

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

/// One datagram a node sent, as [`Sim::trace`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Virtual time it left the node.
    pub at: Time,
    /// The sending node.
    pub from: usize,
    /// Its destination.
    pub to: SocketAddr,
    /// Its length in bytes.
    pub len: usize,
    /// A hash of its bytes.
    pub hash: u64,
}

/// One simulated node.
pub struct SimNode {
    /// The node, `None` once it left.
    pub node: Option<Node>,
    /// Its own address: public, or private when behind a NAT.
    pub addr: SocketAddr,
    /// The NAT it sits behind (index into [`Sim::nats`]).
    pub nat: Option<usize>,
    timer: Option<Time>,
    uplink_free: Time,
}

/// A datagram in flight (kept in a slab; the heap holds only its slot).
struct Packet {
    /// Host the destination address leads to (for NATs: the node behind).
    host: u32,
    /// NAT in front of the host, if any (filters on arrival).
    nat: Option<u32>,
    to: SocketAddr,
    from: SocketAddr,
    bytes: Vec<u8>,
}

/// What an event is: bit 31 set = a packet slot, else a node's timer.
const PACKET: u32 = 1 << 31;

fn nanos(t: Time) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

/// The simulator.
pub struct Sim {
    /// Virtual time.
    pub now: Time,
    /// Every node ever added (index = node id).
    pub nodes: Vec<SimNode>,
    /// NATs (index = NAT id).
    pub nats: Vec<Nat>,
    /// Link behaviour.
    pub link: LinkModel,
    /// Deliveries so far.
    pub deliveries: Vec<Delivery>,
    /// Datagrams sent, lost in flight, and bytes sent.
    pub datagrams: (u64, u64, u64),
    /// Datagrams sent to an address nobody holds.
    pub unroutable: u64,
    /// Counters of nodes that left (their live counters are gone).
    pub retired: Stats,
    /// Events processed so far (datagrams delivered and timers fired).
    pub events: u64,
    /// When `Some`, every datagram sent is recorded in order (to find
    /// where two runs that should be equal part).
    pub trace: Option<Vec<Sent>>,
    by_addr: FastMap<SocketAddr, usize>,
    nat_by_ip: FastMap<IpAddr, usize>,
    queue: Calendar,
    packets: Vec<Packet>,
    free_slots: Vec<u32>,
    scratch: Vec<Transmit>,
    seq: u64,
    rng: SimRng,
    link_salt: u64,
    fingerprint: u64,
}

/// Hashes `bytes` into `h` eight bytes at a time (the run's fingerprint).
fn mix(mut h: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ bytes.len() as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

impl Sim {
    /// An empty network.
    pub fn new(seed: u64, link: LinkModel) -> Self {
        let mut rng = SimRng::new(seed);
        let link_salt = rng.next_u64();
        Self {
            now: Time::ZERO,
            nodes: Vec::new(),
            nats: Vec::new(),
            link,
            deliveries: Vec::new(),
            datagrams: (0, 0, 0),
            unroutable: 0,
            retired: Stats::default(),
            events: 0,
            trace: None,
            by_addr: FastMap::default(),
            nat_by_ip: FastMap::default(),
            queue: Calendar::default(),
            packets: Vec::new(),
            free_slots: Vec::new(),
            scratch: Vec::new(),
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

    /// Adds a node with the public address `addr`; it starts now.
    pub fn add_node(&mut self, cfg: Config, identity: Identity, addr: SocketAddr) -> usize {
        let i = self.push_node(cfg, identity, addr, None);
        self.by_addr.insert(addr, i);
        self.after(i);
        i
    }

    /// Adds a node at the private address `addr` behind a new NAT of `kind`
    /// with public IP `public_ip` and mapping timeout `timeout`; it starts
    /// now. Nobody can reach it until it sends (and then only as the NAT's
    /// filtering allows).
    pub fn add_node_behind_nat(
        &mut self,
        cfg: Config,
        identity: Identity,
        addr: SocketAddr,
        kind: NatKind,
        public_ip: IpAddr,
        timeout: Duration,
    ) -> usize {
        let k = self.nats.len();
        let i = self.push_node(cfg, identity, addr, Some(k));
        // Home routers start their port allocation somewhere random.
        let first = 1024 + self.rng.below(60_000) as u16;
        self.nats.push(Nat::new(kind, public_ip, timeout, i, first));
        self.nat_by_ip.insert(public_ip, k);
        self.after(i);
        i
    }

    fn push_node(
        &mut self,
        cfg: Config,
        identity: Identity,
        addr: SocketAddr,
        nat: Option<usize>,
    ) -> usize {
        let seed = self.rng.seed32();
        // Scenario configs are built in code from valid defaults.
        let node = Node::new(cfg, identity, "sim", None, seed, self.now)
            .expect("simulated nodes get a valid router configuration");
        let i = self.nodes.len();
        self.nodes.push(SimNode {
            node: Some(node),
            addr,
            nat,
            timer: None,
            uplink_free: self.now,
        });
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

    /// The NAT kind node `i` sits behind, if any.
    pub fn nat_kind(&self, i: usize) -> Option<NatKind> {
        let k = self.nodes.get(i)?.nat?;
        self.nats.get(k).map(|n| n.kind)
    }

    /// The address others use to reach node `i`: its own for a public
    /// node; for a NATed node, the newest live mapping a rendezvous server
    /// would have observed, or the NAT's IP with the node's own port when
    /// it has none (which the NAT drops).
    pub fn address_of(&self, i: usize) -> Option<SocketAddr> {
        let sn = self.nodes.get(i)?;
        let Some(nat) = sn.nat.and_then(|k| self.nats.get(k)) else {
            return Some(sn.addr);
        };
        Some(
            nat.observed(self.now)
                .unwrap_or_else(|| SocketAddr::new(nat.ip, sn.addr.port())),
        )
    }

    /// Sum of the counters of every NAT.
    pub fn nat_stats(&self) -> NatStats {
        let mut s = NatStats::default();
        for n in &self.nats {
            s.merge(&n.stats);
        }
        s
    }

    /// Runs `f` on an online node and processes its output.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Time) -> R) -> Option<R> {
        let now = self.now;
        let r = f(self.nodes.get_mut(i)?.node.as_mut()?, now);
        self.after(i);
        Some(r)
    }

    /// Node `i` dials node `j` (at [`Sim::address_of`]).
    pub fn dial(&mut self, i: usize, j: usize) {
        if let Some(addr) = self.address_of(j) {
            self.with_node(i, |n, _| n.connect(addr));
        }
    }

    /// Node `i` dials `addr`.
    pub fn dial_addr(&mut self, i: usize, addr: SocketAddr) {
        self.with_node(i, |n, _| n.connect(addr));
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

    /// The fixed one-way latency of the link between nodes `a` and `b`
    /// (before jitter and uplink queueing).
    pub fn link_latency(&self, a: usize, b: usize) -> Duration {
        let (x, y) = (a.min(b) as u64, a.max(b) as u64);
        let h = crate::rng::derive(self.link_salt, x.wrapping_mul(0x1_0000_0001) ^ y);
        let spread = self.link.latency_spread.as_nanos() as u64;
        self.link.base_latency + Duration::from_nanos(if spread == 0 { 0 } else { h % spread })
    }

    fn push(&mut self, at: Time, what: u32) {
        self.seq += 1;
        self.queue.push(Ev {
            at: nanos(at),
            seq: self.seq,
            what,
        });
    }

    fn push_packet(&mut self, at: Time, p: Packet) {
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.packets[s as usize] = p;
                s
            }
            None => {
                self.packets.push(p);
                (self.packets.len() - 1) as u32
            }
        };
        self.push(at, PACKET | slot);
    }

    /// Collects node `i`'s output: datagrams into flight, events into
    /// deliveries, and its next timer.
    fn after(&mut self, i: usize) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.scratch);
        let Some(sn) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(node) = sn.node.as_mut() else {
            return;
        };
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
        // The node's own order across destinations may follow hash maps;
        // a stable sort by destination makes the run independent of it.
        out.sort_by_key(|t| t.to);
        for t in out.drain(..) {
            self.send(i, now, t);
        }
        self.scratch = out;
        if reschedule {
            self.push(next, i as u32);
        }
    }

    /// One datagram leaves node `i`: uplink, NAT, loss, latency.
    fn send(&mut self, i: usize, now: Time, t: Transmit) {
        let Transmit { to, bytes } = t;
        // The simulated internet routes UDP paths; a node here never makes
        // another kind (relays and host channels have no simulated carrier).
        let Some(to) = to.udp() else {
            return;
        };
        self.datagrams.0 += 1;
        self.datagrams.2 += bytes.len() as u64;
        let to_ip = match to.ip() {
            IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
            IpAddr::V6(ip) => ip.octets(),
        };
        let mut h = self.fingerprint;
        h = mix(h, &nanos(now).to_le_bytes());
        h = mix(h, &to_ip);
        h = mix(h, &to.port().to_le_bytes());
        self.fingerprint = mix(h, &bytes);
        if let Some(trace) = &mut self.trace {
            trace.push(Sent {
                at: now,
                from: i,
                to,
                len: bytes.len(),
                hash: mix(0, &bytes),
            });
        }
        let sn = &mut self.nodes[i];
        let depart = {
            let start = sn.uplink_free.max(now);
            // 28 bytes of IP and UDP headers per datagram.
            let ser = ((bytes.len() as u64 + 28) * 8 * 1_000_000_000)
                .checked_div(self.link.uplink_bps)
                .map_or(Duration::ZERO, Duration::from_nanos);
            sn.uplink_free = start + ser;
            sn.uplink_free
        };
        // The NAT maps the datagram as it leaves (lost or not).
        let from = match sn.nat.and_then(|k| self.nats.get_mut(k)) {
            Some(nat) => nat.outbound(now, to),
            None => sn.addr,
        };
        if self.link.loss > 0.0 && self.rng.unit() < self.link.loss {
            self.datagrams.1 += 1;
            return;
        }
        let (host, nat) = match self.by_addr.get(&to) {
            Some(&j) => (j, None),
            None => match self.nat_by_ip.get(&to.ip()) {
                Some(&k) => (self.nats[k].inside, Some(k as u32)),
                None => {
                    self.unroutable += 1;
                    return;
                }
            },
        };
        let jitter = self.link.jitter.as_nanos() as u64;
        let jit = if jitter == 0 {
            0
        } else {
            self.rng.below(jitter)
        };
        let at = depart + self.link_latency(i, host) + Duration::from_nanos(jit);
        self.push_packet(
            at,
            Packet {
                host: host as u32,
                nat,
                to,
                from,
                bytes,
            },
        );
    }

    /// Runs until virtual time `end`.
    pub fn run_until(&mut self, end: Time) {
        let end_ns = nanos(end);
        while let Some(ev) = self.queue.peek() {
            if ev.at > end_ns {
                break;
            }
            self.queue.pop();
            let at = Duration::from_nanos(ev.at);
            self.now = at.max(self.now);
            self.events += 1;
            let now = self.now;
            if ev.what & PACKET != 0 {
                let slot = ev.what & !PACKET;
                let Some(p) = self.packets.get_mut(slot as usize) else {
                    continue;
                };
                let mut bytes = std::mem::take(&mut p.bytes);
                let (host, nat, to, from) = (p.host as usize, p.nat, p.to, p.from);
                self.free_slots.push(slot);
                if let Some(k) = nat {
                    let Some(n) = self.nats.get_mut(k as usize) else {
                        continue;
                    };
                    if !n.inbound(now, from, to.port()) {
                        continue;
                    }
                }
                if let Some(n) = self.nodes.get_mut(host).and_then(|n| n.node.as_mut()) {
                    n.handle_datagram(now, from, &mut bytes);
                    n.recycle(bytes);
                    self.after(host);
                }
            } else {
                let i = ev.what as usize;
                let due = self.nodes.get(i).and_then(|n| n.timer);
                if due != Some(at) {
                    continue;
                }
                if let Some(n) = self.nodes.get_mut(i).and_then(|n| n.node.as_mut()) {
                    n.handle_timeout(now);
                    self.after(i);
                }
            }
        }
        self.now = self.now.max(end);
    }

    /// Events waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }
}
