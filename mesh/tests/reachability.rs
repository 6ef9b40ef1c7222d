//! The inbound-probe rule end to end: a node becomes "inbound confirmed"
//! only when a peer it never sent to dials it and the handshake completes.

use moss_mesh::{Config, Identity, Node};
use std::net::SocketAddr;
use std::time::Duration;

fn node(i: u8) -> Node {
    Node::new(
        Config::default(),
        Identity::from_seed([i + 1; 32]),
        "reach",
        None,
        [i; 32],
        Duration::ZERO,
    )
    .unwrap()
}

/// Moves datagrams between `nodes` (at `addrs`) until quiet, bounded.
fn run(nodes: &mut [Node], addrs: &[SocketAddr], now: &mut Duration) {
    for _ in 0..200 {
        let mut moved = false;
        for i in 0..nodes.len() {
            nodes[i].handle_timeout(*now);
            while let Some(t) = nodes[i].poll_transmit() {
                let mut bytes = t.bytes;
                if let Some(j) = addrs.iter().position(|a| t.to == *a) {
                    nodes[j].handle_datagram(*now, addrs[i], &mut bytes);
                    moved = true;
                }
            }
        }
        *now += Duration::from_millis(10);
        if !moved && nodes.iter().all(|n| n.peer_count() > 0) {
            return;
        }
    }
}

#[test]
fn the_dialled_node_is_confirmed_and_the_dialler_is_not() {
    let addrs: [SocketAddr; 2] = [
        "10.0.0.1:4000".parse().unwrap(),
        "10.0.0.2:4000".parse().unwrap(),
    ];
    let mut nodes = [node(0), node(1)];
    nodes[1].add_static_peer(addrs[0]);
    let mut now = Duration::ZERO;
    run(&mut nodes, &addrs, &mut now);
    assert_eq!(nodes[0].peer_count(), 1);
    let c = nodes[0]
        .reachability()
        .confirmation()
        .expect("dialled by a stranger");
    assert_eq!(c.from, addrs[1]);
    assert!(
        !nodes[1].reachability().inbound_confirmed(),
        "it only got replies"
    );
    assert_eq!(nodes[0].reachability().nat_type().as_str(), "unknown");
}

#[test]
fn a_peer_we_dialled_first_does_not_confirm_when_it_dials_back() {
    let addrs: [SocketAddr; 2] = [
        "10.0.0.1:4000".parse().unwrap(),
        "10.0.0.2:4000".parse().unwrap(),
    ];
    let mut nodes = [node(0), node(1)];
    nodes[0].add_static_peer(addrs[1]);
    let mut now = Duration::ZERO;
    run(&mut nodes, &addrs, &mut now);
    assert!(nodes[1].reachability().inbound_confirmed());
    // Node 1 restarts on another port of the same IP and dials node 0
    // itself: node 0 had sent to that IP, so (for a NAT that filters by IP)
    // the pinhole proves nothing.
    let addrs = [addrs[0], "10.0.0.2:4001".parse().unwrap()];
    nodes[1] = node(1);
    nodes[1].add_static_peer(addrs[0]);
    run(&mut nodes, &addrs, &mut now);
    assert!(nodes[1].peer_count() == 1, "the restarted node connected");
    assert!(!nodes[0].reachability().inbound_confirmed());
}
