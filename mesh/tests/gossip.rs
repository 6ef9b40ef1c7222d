//! GossipSub through the node: meshes form within their bounds, messages
//! travel signed along mesh links, non-subscribers publish, and the JSON
//! `gossipsub` block reaches the router.

mod common;

use common::{addr, Net};
use moss_mesh::{Config, Event};
use std::time::Duration;

/// `n` nodes, each dialling the `k` previous ones, all on topic "t".
fn dense(n: usize, k: usize) -> Net {
    let mut net = Net::new(n, "g", None);
    for i in 0..n {
        for j in i.saturating_sub(k)..i {
            net.nodes[i].add_static_peer(addr(j));
        }
        net.nodes[i].subscribe("t");
    }
    net
}

#[test]
fn meshes_stay_within_bounds_and_every_subscriber_gets_each_message_once() {
    let mut net = dense(16, 15);
    net.run(Duration::from_secs(5));
    for (i, n) in net.nodes.iter().enumerate() {
        assert_eq!(n.peer_count(), 15, "node {i}");
        let m = n.mesh_peers("t").len();
        assert!((4..=12).contains(&m), "node {i} mesh {m}");
    }
    let now = net.now;
    net.nodes[3].publish(now, "t", b"hello").unwrap();
    net.run(Duration::from_secs(1));
    for i in 0..16 {
        let want = usize::from(i != 3);
        assert_eq!(net.messages(i).len(), want, "node {i}");
    }
    // Flooded by the publisher, then forwarded along meshes only: far fewer
    // copies than a flood of every peer by every node (16 * 15).
    let copies: u64 = net.nodes.iter().map(|n| n.stats().messages_forwarded).sum();
    assert!(copies < 16 * 12, "{copies} copies");
    let hops: Vec<u8> = net
        .events
        .iter()
        .flatten()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.hops),
            _ => None,
        })
        .collect();
    assert!(hops.iter().all(|h| (1..=3).contains(h)), "{hops:?}");
}

#[test]
fn a_publisher_that_does_not_subscribe_reaches_the_subscribers() {
    let mut net = dense(8, 7);
    net.nodes[0].unsubscribe("t");
    net.run(Duration::from_secs(3));
    assert!(net.nodes[0].mesh_peers("t").is_empty());
    let now = net.now;
    net.nodes[0].publish(now, "t", &[7; 3000]).unwrap();
    net.run(Duration::from_secs(1));
    for i in 1..8 {
        assert_eq!(
            net.messages(i),
            vec![("t".to_string(), vec![7; 3000])],
            "node {i}"
        );
    }
}

#[test]
fn gossipsub_json_reaches_the_router() {
    let cfg = Config::from_json(r#"{"gossipsub":{"D":3,"D_lo":2,"D_high":4,"D_out":1}}"#).unwrap();
    let mut net = Net::with(10, |_| ("g".to_string(), None), cfg);
    for i in 0..10 {
        for j in 0..i {
            net.nodes[i].add_static_peer(addr(j));
        }
        net.nodes[i].subscribe("t");
    }
    net.run(Duration::from_secs(5));
    for n in &net.nodes {
        assert!(
            n.mesh_peers("t").len() <= 4 + 1,
            "{}",
            n.mesh_peers("t").len()
        );
    }
    assert!(Config::from_json(r#"{"gossipsub":{"D_out":4}}"#).is_err());
}

/// Subscriptions ride on unreliable datagrams. Both nodes subscribe on a
/// session just up and every datagram carrying the announcements is
/// lost: each still learns the other's topic within a few heartbeats
/// (the re-announcements of a young session,
/// `moss_mesh::pubsub::RESUBSCRIBE_YOUNG`), not only at the rare forced
/// round up to `RESUBSCRIBE_MAX` heartbeats later, and the two mesh.
#[test]
fn subscriptions_lost_on_a_new_session_are_announced_again_within_seconds() {
    let mut net = Net::new(2, "young", None);
    net.nodes[0].add_static_peer(addr(1));
    assert!(net.drive(|n| n.nodes[0].peer_count() == 1 && n.nodes[1].peer_count() == 1));
    net.muted = vec![true, true];
    for n in &mut net.nodes {
        n.subscribe("t");
    }
    net.run(Duration::from_millis(200));
    net.muted = vec![false, false];
    let lost = net.now;
    assert!(net.drive(|n| (0..2).all(|i| n.nodes[i].mesh_peers("t").len() == 1)));
    let took = net.now - lost;
    assert!(
        took <= Duration::from_secs(4),
        "meshed {took:?} after the loss"
    );
}
