//! Detached transport, sans-IO: a node whose sessions' ciphers live on
//! `SessionShard`s talks to ordinary nodes over the unchanged wire format,
//! and data that reaches the wrong shard is recognised as foreign.

use moss_mesh::shard::{owner_of, Inbound, SessionShard, TransportOp};
use moss_mesh::{Config, Event, Identity, Node, Path};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 4000 + i))
}

fn new_node(i: u8) -> Node {
    let cfg = Config::default();
    Node::new(
        cfg,
        Identity::from_seed([i; 32]),
        "shard-test",
        None,
        [i.wrapping_add(100); 32],
        Duration::ZERO,
    )
    .unwrap()
}

/// Node 0 is detached over `shards` shards; the others are plain. `route`
/// picks the shard whose "socket" receives a datagram from a given sender
/// (the kernel's `SO_REUSEPORT` hash in the real engine).
struct Net {
    nodes: Vec<Node>,
    shards: Vec<SessionShard>,
    events: Vec<Vec<Event>>,
    route: fn(SocketAddr) -> usize,
    handoffs: u64,
    /// Data that arrived before its session's install (the engine holds it
    /// the same way).
    held: Vec<(SocketAddr, Vec<u8>)>,
    now: Duration,
}

impl Net {
    fn new(n: u8, shards: usize, route: fn(SocketAddr) -> usize) -> Self {
        let mut nodes: Vec<Node> = (0..n).map(new_node).collect();
        nodes[0].detach_transport(shards).unwrap();
        let keys = nodes[0].mesh_keys().clone();
        Self {
            shards: (0..shards).map(|i| SessionShard::new(i, &keys)).collect(),
            nodes,
            events: (0..n).map(|_| Vec::new()).collect(),
            route,
            handoffs: 0,
            held: Vec::new(),
            now: Duration::ZERO,
        }
    }

    fn step(&mut self) {
        let mut wire: VecDeque<(usize, Path, Vec<u8>)> = VecDeque::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                wire.push_back((i, t.to, t.bytes));
            }
        }
        let mut out = Vec::new();
        while let Some(op) = self.nodes[0].poll_transport() {
            let s = op.shard();
            if let Ok(Some((to, plain))) = self.shards[s].apply(op, &mut out) {
                wire.push_back((0, to, out.clone()));
                self.nodes[0].recycle(plain);
            }
        }
        let held = std::mem::take(&mut self.held);
        let again = held.into_iter().map(|(from, b)| (from, b, true));
        let fresh = wire.into_iter().filter_map(|(src, to, bytes)| {
            let from = addr(src as u16);
            let dst = (0..self.nodes.len()).find(|&i| to == addr(i as u16))?;
            Some((from, bytes, dst))
        });
        let mut inbound = Vec::new();
        for (from, mut bytes, dst) in fresh.collect::<Vec<_>>() {
            if dst != 0 {
                let now = self.now;
                self.nodes[dst].handle_datagram(now, from, &mut bytes);
            } else {
                inbound.push((from, bytes, false));
            }
        }
        for (from, mut bytes, retry) in again.chain(inbound) {
            let now = self.now;
            let mut s = (self.route)(from);
            let mut r = if retry {
                self.shards[s].receive_forwarded(from, &mut bytes)
            } else {
                self.shards[s].receive(from, &mut bytes)
            };
            if let Inbound::Foreign { owner } = r {
                self.handoffs += 1;
                s = owner;
                r = self.shards[s].receive_forwarded(from, &mut bytes);
            }
            match r {
                Inbound::Frames { index, plain } => {
                    assert_eq!(owner_of(index), s);
                    self.nodes[0].handle_plaintext(now, index, from, &bytes[plain]);
                }
                Inbound::Handshake => {
                    self.nodes[0].handle_shard_datagram(now, from, s, &mut bytes);
                }
                Inbound::Unknown { .. } => self.held.push((from, bytes)),
                other => panic!("unexpected {other:?}"),
            }
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            while let Some(e) = n.poll_event() {
                self.events[i].push(e);
            }
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            for n in &mut self.nodes {
                n.handle_timeout(self.now);
            }
            for _ in 0..4 {
                self.step();
            }
            self.now += Duration::from_millis(10);
        }
    }

    fn got(&self, i: usize, id: [u8; 32]) -> bool {
        self.events[i]
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.id == id))
    }
}

#[test]
fn detached_node_talks_to_plain_nodes_and_sessions_live_on_the_receiving_shard() {
    // Node 1 lands on shard 1, node 2 on shard 0.
    let mut net = Net::new(3, 2, |from| usize::from(from.port() % 2));
    for n in &mut net.nodes {
        n.subscribe("t");
    }
    let hub = addr(0);
    net.nodes[1].connect(hub);
    net.nodes[2].connect(hub);
    net.run(Duration::from_secs(1));
    assert_eq!(net.nodes[0].peer_count(), 2);
    assert_eq!(net.nodes[1].peer_count(), 1);
    assert_eq!(net.shards[0].session_count(), 1);
    assert_eq!(net.shards[1].session_count(), 1);
    assert_eq!(
        net.handoffs, 0,
        "inbound sessions are owned where they land"
    );
    let now = net.now;
    let a = net.nodes[0].publish(now, "t", b"from the hub").unwrap();
    let b = net.nodes[1].publish(now, "t", &[7u8; 5000]).unwrap();
    net.run(Duration::from_millis(200));
    assert!(net.got(1, a) && net.got(2, a));
    assert!(net.got(0, b), "fragmented message opened on a shard");

    // Keepalives and idle expiry run through the shards too.
    net.run(Duration::from_secs(40));
    assert_eq!(net.nodes[0].peer_count(), 2, "keepalives hold the sessions");
    assert_eq!(net.nodes[1].peer_count(), 1);
    let st = net.shards[0].stats().clone();
    assert!(st.datagrams_in > 0 && st.datagrams_out > 0);
    // Shutdown closes every session through its shard.
    net.nodes[0].shutdown();
    net.step();
    assert_eq!(net.nodes[1].peer_count(), 0);
    assert_eq!(net.nodes[2].peer_count(), 0);
    assert_eq!(
        net.shards[0].session_count() + net.shards[1].session_count(),
        0
    );
}

#[test]
fn outbound_dial_whose_replies_land_elsewhere_is_handed_over() {
    // Everything arrives on shard 0; the hub's dials alternate owners, so
    // the second session's data is foreign to shard 0.
    let mut net = Net::new(3, 2, |_| 0);
    for n in &mut net.nodes {
        n.subscribe("t");
    }
    net.nodes[0].connect(addr(1));
    net.nodes[0].connect(addr(2));
    net.run(Duration::from_secs(1));
    assert_eq!(net.nodes[0].peer_count(), 2);
    assert_eq!(net.shards[0].session_count(), 1);
    assert_eq!(net.shards[1].session_count(), 1);
    let now = net.now;
    let m1 = net.nodes[1].publish(now, "t", b"one").unwrap();
    let m2 = net.nodes[2].publish(now, "t", b"two").unwrap();
    net.run(Duration::from_millis(200));
    assert!(net.got(0, m1) && net.got(0, m2));
    assert!(net.handoffs > 0);
}

#[test]
fn detach_is_refused_after_sessions_or_with_a_bad_count() {
    let mut n = new_node(9);
    assert!(n.detach_transport(0).is_err());
    assert!(n
        .detach_transport(moss_mesh::shard::MAX_SHARDS + 1)
        .is_err());
    n.connect(addr(1));
    assert!(n.detach_transport(2).is_err());
    let mut m = new_node(8);
    assert!(m.detach_transport(2).is_ok());
    assert_eq!(m.detached_shards(), Some(2));
    // Data the node itself is fed in detached mode is never opened there.
    let mut junk = vec![0u8; 64];
    m.handle_datagram(Duration::ZERO, addr(1), &mut junk);
    assert!(m.poll_transport().is_none());
    assert!(matches!(
        TransportOp::Remove { index: 0x1000_0000 }.shard(),
        1
    ));
}
