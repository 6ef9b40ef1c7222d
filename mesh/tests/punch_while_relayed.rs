//! Punching while relayed, on real sans-IO nodes behind modelled NATs: a
//! pair that the birthday spray can punch (a symmetric NAT whose host opens
//! spray sockets, facing a port-restricted cone) is relayed through a
//! supernode first, and must still go direct later, both ends reporting
//! event 7 (`Event::RelayMigrated`) and no message lost on the way. The
//! relay's own direct probes cannot open this pair (the symmetric end's
//! port toward the supernode is not the one it uses toward the cone), so
//! only a punch run while relayed gets it there. A symmetric pair (no spray
//! can open it) stays relayed, hears the other end, and asks for a punch a
//! bounded number of times, ever further apart.
//!
//! The network: public nodes (the supernode and five helpers the NATed
//! nodes classify against) on their own addresses; each NATed node behind
//! its own NAT (port-restricted: one public port, inbound only from an
//! address and port the node sent to; symmetric: a random public port per
//! local socket and remote, inbound only from that remote). The symmetric
//! host's spray sockets (`Node::poll_spray`) are modelled as the engine
//! runs them: each socket sends the order's datagram from a fresh random
//! port; the first that hears from the peer's IP is kept as the session's
//! path `Path::Channel(id)`, the round's others close after the round.

use moss_mesh::nat::{SprayOrder, RELAYED_PUNCH_MAX, SPRAY_CHANNEL_BASE, SPRAY_SOCKETS};
use moss_mesh::{Config, Event, Identity, Input, Node, Path, PeerId, Time};
use moss_telemetry::NatType;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const LATENCY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Public,
    PortRestricted,
    Symmetric,
}

/// A local socket of a node: its main one, or spray socket `id`.
type Sock = u64;
const MAIN: Sock = 0;

/// One NAT with one node behind it.
struct Nat {
    kind: Kind,
    ip: Ipv4Addr,
    /// Public port of a mapping by (socket, remote); a cone's mapping
    /// ignores the remote (stored under the unspecified address).
    out: HashMap<(Sock, SocketAddr), u16>,
    /// (socket, the remote the mapping admits; any for a cone) by port.
    inbound: HashMap<u16, (Sock, Option<SocketAddr>)>,
    /// Remotes each socket sent to (port-restricted filtering).
    sent: HashSet<(Sock, SocketAddr)>,
}

/// A spray round's sockets, open until `until`.
struct Round {
    peer: IpAddr,
    until: Time,
    socks: Vec<Sock>,
}

struct Host {
    node: Node,
    nat: Nat,
    /// The node's own (private, or public) address.
    local: SocketAddr,
    rounds: Vec<Round>,
    /// Kept spray sockets and the remote each talks to.
    kept: HashMap<Sock, SocketAddr>,
    next_sock: Sock,
    events: Vec<(Time, Event)>,
}

struct Net {
    hosts: Vec<Host>,
    queue: VecDeque<(Time, SocketAddr, SocketAddr, Vec<u8>)>,
    now: Time,
    rng: u64,
    /// Pairs of IPs whose datagrams to each other are lost (a direct path
    /// that is down for now).
    cut: Vec<(IpAddr, IpAddr)>,
}

fn cfg() -> Config {
    let mut c = Config::default();
    c.nat.supernode_min_uptime_sec = 1;
    c
}

impl Net {
    fn new() -> Self {
        Net {
            hosts: Vec::new(),
            queue: VecDeque::new(),
            now: Duration::ZERO,
            rng: 0x2545_F491_4F6C_DD1D,
            cut: Vec::new(),
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Adds node `k` of `kind` (its host opens spray sockets if `spray`).
    fn add(&mut self, k: u8, kind: Kind, spray: bool) -> usize {
        let (local, ip) = match kind {
            Kind::Public => {
                let ip = Ipv4Addr::new(203, 0, 113, k);
                (SocketAddr::from((ip, 4000)), ip)
            }
            _ => (
                SocketAddr::from(([192, 168, k, 2], 4000)),
                Ipv4Addr::new(198, 51, 100, k),
            ),
        };
        let mut seed = [0u8; 32];
        seed[0] = k;
        seed[1] = 0x77;
        let mut node = Node::new(
            cfg(),
            Identity::from_seed([k; 32]),
            "punch-relayed",
            None,
            seed,
            Duration::ZERO,
        )
        .expect("node");
        node.set_local_addrs(&[local]);
        node.enable_spray(if spray { SPRAY_SOCKETS } else { 0 });
        node.subscribe("chat");
        self.hosts.push(Host {
            node,
            nat: Nat {
                kind,
                ip,
                out: HashMap::new(),
                inbound: HashMap::new(),
                sent: HashSet::new(),
            },
            local,
            rounds: Vec::new(),
            kept: HashMap::new(),
            next_sock: SPRAY_CHANNEL_BASE,
            events: Vec::new(),
        });
        self.hosts.len() - 1
    }

    fn addr(&self, i: usize) -> SocketAddr {
        match self.hosts[i].nat.kind {
            Kind::Public => self.hosts[i].local,
            _ => SocketAddr::from((self.hosts[i].nat.ip, 4000)),
        }
    }

    fn id(&self, i: usize) -> PeerId {
        self.hosts[i].node.public_key()
    }

    /// The public source address of a datagram host `i` sends from socket
    /// `sock` to `to` (a new mapping if needed).
    fn map_out(&mut self, i: usize, sock: Sock, to: SocketAddr) -> SocketAddr {
        let kind = self.hosts[i].nat.kind;
        if kind == Kind::Public {
            return self.hosts[i].local;
        }
        let key = match kind {
            Kind::Symmetric => (sock, to),
            _ => (sock, SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        let port = match self.hosts[i].nat.out.get(&key) {
            Some(&p) => p,
            None => loop {
                let p = 1024 + (self.rand() % u64::from(u16::MAX - 1023)) as u16;
                let nat = &mut self.hosts[i].nat;
                if !nat.inbound.contains_key(&p) {
                    nat.out.insert(key, p);
                    let admits = (kind == Kind::Symmetric).then_some(to);
                    nat.inbound.insert(p, (sock, admits));
                    break p;
                }
            },
        };
        self.hosts[i].nat.sent.insert((sock, to));
        SocketAddr::from((self.hosts[i].nat.ip, port))
    }

    fn send(&mut self, i: usize, sock: Sock, to: SocketAddr, bytes: Vec<u8>) {
        let from = self.map_out(i, sock, to);
        self.queue.push_back((self.now + LATENCY, from, to, bytes));
    }

    /// Collects every host's transmits, spray orders and events.
    fn collect(&mut self) {
        for i in 0..self.hosts.len() {
            while let Some(t) = self.hosts[i].node.poll_transmit() {
                match t.to {
                    Path::Udp(to) => self.send(i, MAIN, to, t.bytes),
                    Path::Channel(id) => {
                        if let Some(&to) = self.hosts[i].kept.get(&id) {
                            self.send(i, id, to, t.bytes);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(o) = self.hosts[i].node.poll_spray() {
                self.spray(i, o);
            }
            // No fresh probe sockets here: their tests stay inconclusive.
            while self.hosts[i].node.poll_fresh_socket().is_some() {}
            while let Some(e) = self.hosts[i].node.poll_event() {
                let now = self.now;
                self.hosts[i].events.push((now, e));
            }
        }
    }

    /// Runs a spray order as the engine does: sockets with fresh ports,
    /// each sending the order's datagram once.
    fn spray(&mut self, i: usize, o: SprayOrder) {
        let mut socks = Vec::new();
        for _ in 0..o.sockets {
            let id = self.hosts[i].next_sock;
            self.hosts[i].next_sock += 1;
            self.send(i, id, o.to, o.datagram.clone());
            socks.push(id);
        }
        let until = self.now + o.hold;
        self.hosts[i].rounds.push(Round {
            peer: o.to.ip(),
            until,
            socks,
        });
    }

    /// The host, socket and (for a spray socket) channel a datagram from
    /// `from` to public address `to` reaches, if its NAT lets it in.
    fn route(&mut self, from: SocketAddr, to: SocketAddr) -> Option<(usize, Path)> {
        let now = self.now;
        let i = self.hosts.iter().position(|h| match h.nat.kind {
            Kind::Public => h.local == to,
            _ => IpAddr::V4(h.nat.ip) == to.ip(),
        })?;
        if self.hosts[i].nat.kind == Kind::Public {
            return Some((i, Path::Udp(from)));
        }
        let &(sock, admits) = self.hosts[i].nat.inbound.get(&to.port())?;
        let allowed = match admits {
            Some(r) => r == from,
            None => self.hosts[i].nat.sent.contains(&(sock, from)),
        };
        if !allowed {
            return None;
        }
        if sock == MAIN {
            return Some((i, Path::Udp(from)));
        }
        let h = &mut self.hosts[i];
        if h.kept.contains_key(&sock) {
            return Some((i, Path::Channel(sock)));
        }
        // A round's socket: the first to hear from the peer's IP is kept
        // and the round's others close.
        let r = h
            .rounds
            .iter()
            .position(|r| r.until > now && r.socks.contains(&sock) && r.peer == from.ip())?;
        h.rounds.remove(r);
        h.kept.insert(sock, from);
        Some((i, Path::Channel(sock)))
    }

    fn step(&mut self) {
        self.collect();
        let timer = self.hosts.iter().map(|h| h.node.poll_timeout()).min();
        let pkt = self.queue.front().map(|p| p.0);
        let Some(next) = timer.into_iter().chain(pkt).min() else {
            return;
        };
        self.now = next.max(self.now);
        let now = self.now;
        while self.queue.front().is_some_and(|p| p.0 <= now) {
            let Some((_, from, to, mut bytes)) = self.queue.pop_front() else {
                break;
            };
            let (f, t) = (from.ip(), to.ip());
            if self.cut.iter().any(|&c| c == (f, t) || c == (t, f)) {
                continue;
            }
            if let Some((i, path)) = self.route(from, to) {
                let input = Input::Datagram {
                    from: path,
                    bytes: &mut bytes,
                };
                self.hosts[i].node.handle(now, input);
            }
        }
        for h in &mut self.hosts {
            h.rounds.retain(|r| r.until > now);
            if h.node.poll_timeout() <= now {
                h.node.handle(now, Input::Timeout);
            }
        }
        self.collect();
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Node `i`'s path to node `j`, if connected.
    fn path(&self, i: usize, j: usize) -> Option<Path> {
        let pj = self.id(j);
        self.hosts[i]
            .node
            .peers()
            .into_iter()
            .find(|p| p.peer == pj)
            .map(|p| p.addr)
    }

    /// When node `i` reported event 7 for node `j` (from a relay path).
    fn migrated(&self, i: usize, j: usize) -> Vec<(Time, Path)> {
        let pj = self.id(j);
        self.hosts[i]
            .events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::RelayMigrated {
                    peer,
                    from: Path::Relay { .. },
                    to,
                } if *peer == pj => Some((*t, *to)),
                _ => None,
            })
            .collect()
    }

    /// The payloads node `i` received on `chat` from node `j`.
    fn heard(&self, i: usize, j: usize) -> BTreeSet<Vec<u8>> {
        let pj = self.id(j);
        self.hosts[i]
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message(m) if m.from == pj && m.topic() == "chat" => Some(m.data().to_vec()),
                _ => None,
            })
            .collect()
    }
}

fn relayed(p: Option<Path>) -> bool {
    matches!(p, Some(Path::Relay { .. }))
}

fn direct(p: Option<Path>) -> bool {
    p.is_some() && !relayed(p)
}

/// A supernode, five public helpers, and `kinds` behind their NATs, every
/// node connected to the supernode and each NATed one classified. With
/// `cut`, the NATed nodes' direct paths to each other are down.
fn lab(kinds: &[(Kind, bool)], cut: bool) -> (Net, usize, Vec<usize>) {
    let mut net = Net::new();
    let sn = net.add(1, Kind::Public, false);
    let helpers: Vec<usize> = (2..7).map(|k| net.add(k, Kind::Public, false)).collect();
    let ends: Vec<usize> = kinds
        .iter()
        .enumerate()
        .map(|(n, &(kind, spray))| net.add(10 + n as u8, kind, spray))
        .collect();
    if cut {
        for (n, &x) in ends.iter().enumerate() {
            for &y in &ends[n + 1..] {
                let ip = |i: usize| IpAddr::V4(net.hosts[i].nat.ip);
                net.cut.push((ip(x), ip(y)));
            }
        }
    }
    // Everyone dials the supernode only: the helpers then serve as the
    // NATed nodes' third parties (a probe from an IP they never sent to).
    let s = net.addr(sn);
    for &n in helpers.iter().chain(&ends) {
        net.hosts[n].node.connect(s);
    }
    net.run_for(Duration::from_secs(60));
    for (&e, &(kind, _)) in ends.iter().zip(kinds) {
        let want = match kind {
            Kind::Symmetric => NatType::SymmetricNat,
            Kind::PortRestricted => NatType::PortRestrictedCone,
            Kind::Public => NatType::Public,
        };
        assert_eq!(
            net.hosts[e].node.reachability().nat_type(),
            want,
            "node {e} classified: {:?}",
            net.hosts[e].node.stats().nat
        );
    }
    assert!(net.hosts[sn].node.is_supernode(), "the supernode promoted");
    (net, sn, ends)
}

/// Unless `a` and `b` are relayed already (a probe's dial between them
/// timed out, and a supernode was asked), has `a` ask the supernode for a
/// relay to `b`; runs until both ends hold the relayed session.
fn relay(net: &mut Net, a: usize, b: usize) {
    let kb = net.id(b);
    if net.path(a, b).is_none() {
        assert!(
            net.hosts[a].node.connect_via_relay(kb),
            "a supernode to ask"
        );
    }
    let end = net.now + Duration::from_secs(20);
    while net.now < end {
        if relayed(net.path(a, b)) && relayed(net.path(b, a)) {
            return;
        }
        net.step();
    }
    panic!(
        "{a} and {b} never relayed: {:?} / {:?}",
        net.path(a, b),
        net.path(b, a)
    );
}

/// Each of `ends` publishes a numbered message every second for
/// `secs` seconds.
fn chat(net: &mut Net, ends: &[usize], secs: u32, first: u32) {
    for s in first..first + secs {
        for &e in ends {
            let now = net.now;
            let _ = net.hosts[e].node.publish(now, "chat", &s.to_le_bytes());
        }
        net.run_for(Duration::from_secs(1));
    }
}

#[test]
fn a_spray_pair_relayed_first_is_punched_later_and_migrates_with_event_7() {
    // The pair's direct path is down at first, so that it is relayed (as
    // when its first punch failed, or a dial timed out first) ...
    let (mut net, _sn, ends) = lab(
        &[(Kind::PortRestricted, false), (Kind::Symmetric, true)],
        true,
    );
    let (cone, sym) = (ends[0], ends[1]);
    relay(&mut net, cone, sym);
    // ... and comes back: only a punch opens it.
    net.cut.clear();
    let since = net.now;
    chat(&mut net, &[cone, sym], 150, 0);
    let (pc, ps) = (net.path(cone, sym), net.path(sym, cone));
    let report = format!(
        "cone's path {pc:?}, symmetric's path {ps:?}\ncone {:?}\nsymmetric {:?}",
        net.hosts[cone].node.stats().nat,
        net.hosts[sym].node.stats().nat
    );
    assert!(direct(pc) && direct(ps), "went direct: {report}");
    // The symmetric end's path is the spray socket that heard back.
    assert!(
        matches!(ps, Some(Path::Channel(id)) if id >= SPRAY_CHANNEL_BASE),
        "{report}"
    );
    let (mc, ms) = (net.migrated(cone, sym), net.migrated(sym, cone));
    assert_eq!(mc.len(), 1, "one event 7 at the cone: {mc:?}\n{report}");
    assert_eq!(
        ms.len(),
        1,
        "one event 7 at the symmetric end: {ms:?}\n{report}"
    );
    assert!(mc[0].0 > since && ms[0].0 > since);
    // Not a message lost while the session moved: every one published
    // once both ends had the other's subscription was delivered.
    for (to, from) in [(cone, sym), (sym, cone)] {
        let heard = net.heard(to, from);
        let missing: Vec<u32> = (2..150u32)
            .filter(|s| !heard.contains(s.to_le_bytes().as_slice()))
            .collect();
        assert!(missing.is_empty(), "{to} missed {missing:?} of {from}'s");
    }
    println!(
        "direct path back at {since:?}; event 7 at the cone {:?}, at the symmetric end {:?}",
        mc[0].0, ms[0].0
    );
}

#[test]
fn a_symmetric_pair_stays_relayed_and_its_punch_requests_thin_out_and_stop() {
    let (mut net, _sn, ends) = lab(&[(Kind::Symmetric, true), (Kind::Symmetric, true)], false);
    let (a, b) = (ends[0], ends[1]);
    relay(&mut net, a, b);
    let (ka, kb) = (net.id(a), net.id(b));
    let requests = |net: &Net| {
        u64::from(net.hosts[a].node.relayed_punch_requests(&kb))
            + u64::from(net.hosts[b].node.relayed_punch_requests(&ka))
    };
    // Twenty-two minutes of chat: still relayed, both hear each other.
    let mut counts = Vec::new();
    for minute in 0..22u32 {
        chat(&mut net, &[a, b], 60, minute * 60);
        counts.push(requests(&net));
        assert!(
            relayed(net.path(a, b)) && relayed(net.path(b, a)),
            "minute {minute}"
        );
    }
    for (to, from) in [(a, b), (b, a)] {
        let heard = net.heard(to, from);
        assert!(heard.len() > 1300, "{to} heard {} of {from}'s", heard.len());
    }
    // Bounded: each end asked the cap's worth, ever further apart (more in
    // the first five minutes than in the next ten), then no more.
    let cap = u64::from(RELAYED_PUNCH_MAX);
    assert_eq!(
        net.hosts[a].node.relayed_punch_requests(&kb),
        RELAYED_PUNCH_MAX
    );
    assert_eq!(
        net.hosts[b].node.relayed_punch_requests(&ka),
        RELAYED_PUNCH_MAX
    );
    assert_eq!(counts[21], 2 * cap, "{counts:?}");
    assert!(counts[4] > counts[14] - counts[4], "{counts:?}");
    assert_eq!(counts[16], counts[21], "still asking late: {counts:?}");
    println!("relayed punch requests (both ends) by minute: {counts:?}");
}
