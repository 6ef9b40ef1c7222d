//! Shard conformance: sharded (`engine.shards` = 2) and unsharded nodes on
//! 127.0.0.1 talk to each other on every backend, many peers spread over
//! the shards, and datagrams that land on the wrong shard are handed over.

mod common;

use common::{backends, wait_for};
use moss::{Node, NodeStats};
use std::net::UdpSocket;
use std::time::Duration;

const MESH: &str = "shards-test";

fn node(backend: &str, shards: u32) -> Node {
    common::node(MESH, backend, Some(shards))
}

fn knows_topic(n: &Node, peers: usize, topic: &str) -> bool {
    n.stats().is_ok_and(|s| {
        s.peers
            .iter()
            .filter(|p| p.topics.iter().any(|t| t == topic))
            .count()
            >= peers
    })
}

fn handoffs(s: &NodeStats) -> (u64, u64) {
    s.shard_stats
        .iter()
        .fold((0, 0), |(o, i), x| (o + x.handoffs_out, i + x.handoffs_in))
}

#[test]
fn sharded_and_unsharded_nodes_exchange_messages_on_every_backend() {
    if !cfg!(target_os = "linux") {
        return;
    }
    for b in backends() {
        let a = node(b, 2);
        let c = node(b, 1);
        assert_eq!(a.backend(), b);
        let sub_a = a.subscribe("chat").unwrap();
        let sub_c = c.subscribe("chat").unwrap();
        // c dials a: a's session is made by the shard that got message 1.
        let peer = c
            .connect_wait(&a.local_addr().to_string(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(peer, a.public_key());
        assert!(wait_for(|| a.peer_count() == 1), "{b}: a sees c");
        assert!(wait_for(|| knows_topic(&a, 1, "chat")), "{b}");
        assert!(wait_for(|| knows_topic(&c, 1, "chat")), "{b}");
        for i in 0..20u8 {
            c.publish("chat", &[i; 100]).unwrap();
            let m = sub_a.recv_timeout(Duration::from_secs(10)).expect("a gets");
            assert_eq!(m.data, vec![i; 100], "{b}");
            assert_eq!(m.from, c.public_key());
            a.publish("chat", &[i; 3000]).unwrap();
            let m = sub_c.recv_timeout(Duration::from_secs(10)).expect("c gets");
            assert_eq!(m.data, vec![i; 3000], "{b}: fragmented from a shard");
            assert_eq!(m.from, a.public_key());
        }
        let s = a.stats().unwrap();
        assert_eq!(s.shards, 2, "{b}");
        assert_eq!(s.shard_stats.len(), 2);
        let per: u64 = s.shard_stats.iter().map(|x| x.datagrams_in).sum();
        assert!(per >= 20, "{b}: {:?}", s.shard_stats);
        assert_eq!(
            s.counters.datagrams_in, per,
            "{b}: totals are the shards' sum"
        );
        assert_eq!(s.shard_stats.iter().map(|x| x.sessions).sum::<usize>(), 1);
        let cs = c.stats().unwrap();
        assert_eq!(cs.shards, 1);
        assert_eq!(cs.shard_stats[0].datagrams_in, cs.counters.datagrams_in);
        // A clean stop tells the unsharded peer at once.
        drop(a);
        assert!(
            wait_for(|| c.peer_count() == 0),
            "{b}: close frame sent by a shard"
        );
    }
}

#[test]
fn many_peers_spread_over_shards() {
    if !cfg!(target_os = "linux") {
        return;
    }
    const PEERS: usize = 16;
    let hub = node("mmsg", 2);
    let hub_sub = hub.subscribe("spread").unwrap();
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let p = node("portable", 1);
        let sub = p.subscribe("spread").unwrap();
        p.connect_wait(&hub.local_addr().to_string(), Duration::from_secs(10))
            .unwrap();
        peers.push((p, sub));
    }
    assert!(wait_for(|| hub.peer_count() == PEERS));
    assert!(wait_for(|| knows_topic(&hub, PEERS, "spread")));
    for (p, _) in &peers {
        assert!(wait_for(|| knows_topic(p, 1, "spread")));
    }
    let s = hub.stats().unwrap();
    let sessions: Vec<usize> = s.shard_stats.iter().map(|x| x.sessions).collect();
    assert_eq!(sessions.iter().sum::<usize>(), PEERS, "{sessions:?}");
    // 16 source ports hashed over 2 sockets: all on one is 2^-15.
    assert!(sessions.iter().all(|&n| n > 0), "{sessions:?}");
    // Inbound sessions live on the shard that receives their datagrams.
    assert_eq!(handoffs(&s), (0, 0), "{:?}", s.shard_stats);
    // Data racing its session's install (message 3 and the subscriptions
    // travel together) waited for it instead of being lost.
    assert_eq!(s.counters.drops.get(moss::DropReason::UnknownSession), 0);
    hub.publish("spread", b"to all").unwrap();
    for (p, sub) in &peers {
        let m = sub
            .recv_timeout(Duration::from_secs(10))
            .expect("peer gets");
        assert_eq!(m.data, b"to all");
        assert_eq!(m.from, hub.public_key());
        p.publish("spread", p.public_key().to_hex().as_bytes())
            .unwrap();
    }
    let mut from = std::collections::HashSet::new();
    while from.len() < PEERS {
        let m = hub_sub
            .recv_timeout(Duration::from_secs(10))
            .expect("hub gets every peer's message");
        assert_eq!(m.data, m.from.to_hex().as_bytes());
        from.insert(m.from);
    }
    // The hub forwards what one peer publishes to the others (through the
    // core's router and every shard's seal path).
    let (p0, _) = &peers[0];
    let (_, sub1) = &peers[1];
    let mut seen = false;
    while let Some(m) = sub1.recv_timeout(Duration::from_secs(5)) {
        if m.from == p0.public_key() {
            seen = true;
            break;
        }
    }
    assert!(seen, "peer 1 gets peer 0's message through the hub");
}

#[test]
fn outbound_sessions_work_across_shards() {
    if !cfg!(target_os = "linux") {
        return;
    }
    // The hub dials: its session indices go round-robin over its shards,
    // while the replies land wherever the kernel hashes them, so some are
    // handed from shard to shard. Messages must flow either way.
    const PEERS: usize = 6;
    let hub = node("mmsg", 2);
    let hub_sub = hub.subscribe("out").unwrap();
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let p = node("portable", 1);
        let sub = p.subscribe("out").unwrap();
        hub.connect_wait(&p.local_addr().to_string(), Duration::from_secs(10))
            .unwrap();
        peers.push((p, sub));
    }
    assert!(wait_for(|| knows_topic(&hub, PEERS, "out")));
    for (p, _) in &peers {
        assert!(wait_for(|| knows_topic(p, 1, "out")));
    }
    for i in 0..5u8 {
        hub.publish("out", &[i; 64]).unwrap();
        for (p, sub) in &peers {
            // Other peers' messages, forwarded by the hub (every peer is in
            // its mesh), may come first: wait for the hub's own.
            let m = std::iter::from_fn(|| sub.recv_timeout(Duration::from_secs(10)))
                .take(64)
                .find(|m| m.from == hub.public_key())
                .expect("peer gets");
            assert_eq!(m.data, vec![i; 64]);
            p.publish("out", &[i, 1, 2, 3]).unwrap();
        }
        for _ in 0..PEERS {
            let m = hub_sub
                .recv_timeout(Duration::from_secs(10))
                .expect("hub gets");
            assert_eq!(m.data, vec![i, 1, 2, 3]);
        }
    }
    // A shard counts a hand-off when it queues it and the owner when it
    // takes it, so a snapshot taken while one is queued (a keepalive, a
    // late forward) differs by those: every hand-off has arrived once the
    // two totals meet.
    let settled = wait_for(|| hub.stats().is_ok_and(|s| handoffs(&s).0 == handoffs(&s).1));
    let s = hub.stats().unwrap();
    assert!(settled, "every hand-off arrived: {:?}", s.shard_stats);
    assert!(s.shard_stats.iter().all(|x| x.queue_drops == 0));
}

#[test]
fn misrouted_datagram_is_handed_off() {
    if !cfg!(target_os = "linux") {
        return;
    }
    use moss_crypto::{MeshKeys, Scrambler};
    use moss_mesh::wire::Head;
    let hub = node("portable", 2);
    let keys = MeshKeys::derive(MESH, None);
    let scrambler = Scrambler::new(keys.scramble_key);
    // A data datagram for an index owned by shard 1 (top bits 0001).
    let index = 0x1000_0001u32;
    let mut d = Head::Data {
        receiver: index,
        counter: 7,
    }
    .encode()
    .to_vec();
    d.extend_from_slice(&[0x42; 48]);
    assert!(scrambler.toggle_head(&mut d));
    assert_eq!(moss_mesh::shard::owner_of(index), 1);
    // From many source ports, so the kernel's hash puts some on shard 0.
    let socks: Vec<UdpSocket> = (0..32)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for s in &socks {
        s.send_to(&d, hub.local_addr()).unwrap();
    }
    assert!(wait_for(|| {
        let s = hub.stats().unwrap();
        s.counters.datagrams_in == 32 && s.shard_stats[0].handoffs_out > 0
    }));
    let s = hub.stats().unwrap();
    assert_eq!(s.shard_stats[0].handoffs_out, s.shard_stats[1].handoffs_in);
    assert_eq!(s.shard_stats[1].handoffs_out, 0, "shard 1 owns the index");
    assert_eq!(
        s.shard_stats[0].datagrams_in + s.shard_stats[1].datagrams_in,
        32
    );
    // Shard 1 has no such session: each copy waits for an install, then is
    // dropped as unknown.
    assert!(wait_for(|| hub
        .stats()
        .unwrap()
        .counters
        .drops
        .get(moss::DropReason::UnknownSession)
        == 32));
}

#[test]
fn one_shard_is_the_unsharded_engine() {
    let n = node("portable", 1);
    let s = n.stats().unwrap();
    assert_eq!(s.shards, 1);
    assert_eq!(s.shard_stats.len(), 1);
    assert_eq!(handoffs(&s), (0, 0));
}
