//! One peer dialled at two of its addresses (a static peer and the LAN
//! address its beacon announced): one session per side, a bounded number
//! of handshakes, no CLOSE for an index the peer already forgot, and no
//! redial churn (issue #16).

mod common;

use common::{addr, second_addr, Net};
use moss_mesh::{DropReason, Event};
use std::time::Duration;

/// What a node's counters say about its one peer.
fn summary(net: &Net, i: usize) -> (usize, usize, u64, u64, u64) {
    let n = &net.nodes[i];
    let s = n.stats();
    (
        n.peer_count(),
        n.session_count(),
        s.handshakes_initiated,
        s.handshakes_completed,
        s.drops.get(DropReason::UnknownSession),
    )
}

fn connects(net: &Net, i: usize) -> usize {
    net.events[i]
        .iter()
        .filter(|e| matches!(e, Event::PeerConnected { .. }))
        .count()
}

fn disconnects(net: &Net, i: usize) -> usize {
    net.events[i]
        .iter()
        .filter(|e| matches!(e, Event::PeerDisconnected { .. }))
        .count()
}

/// Asserts one session per side (once the loser's grace is over), nothing
/// dropped as `unknown_session`, and that the next 60 s of simulated time
/// start no handshake.
fn assert_settled_and_quiet(net: &mut Net, redial: impl Fn(&mut Net)) {
    assert!(net.run_until_idle());
    // A duplicate that lost lingers for its grace period.
    net.run(moss_mesh::RETIRE_GRACE + Duration::from_secs(1));
    for i in 0..2 {
        let (peers, sessions, _, _, unknown) = summary(net, i);
        assert_eq!((peers, sessions, unknown), (1, 1, 0), "node {i}");
    }
    let before: Vec<_> = (0..2).map(|i| summary(net, i)).collect();
    for _ in 0..12 {
        redial(net);
        net.run(Duration::from_secs(5));
    }
    let after: Vec<_> = (0..2).map(|i| summary(net, i)).collect();
    assert_eq!(
        before, after,
        "60 s later: (peers, sessions, initiated, completed, unknown)"
    );
    for i in 0..2 {
        assert_eq!(connects(net, i), 1, "node {i} connected once");
        assert_eq!(disconnects(net, i), 0, "node {i} never disconnected");
    }
}

/// Two nodes with two interfaces each; node 0 has node 1 as static peer
/// at its first address.
fn two_hosts() -> Net {
    let mut net = Net::new(2, "local", None);
    net.add_second_interface();
    net.nodes[0].add_static_peer(addr(1));
    net
}

#[test]
fn a_static_peer_dialled_at_a_second_address_at_once_keeps_one_session() {
    let mut net = two_hosts();
    net.nodes[0].connect(second_addr(1));
    assert_settled_and_quiet(&mut net, |n| n.nodes[0].connect(second_addr(1)));
    for i in 0..2 {
        let (_, _, _, completed, _) = summary(&net, i);
        assert_eq!(completed, 2, "node {i}: two dials, two handshakes");
    }
    assert_eq!(summary(&net, 0).2, 2, "node 0 dialled twice, no redial");
}

#[test]
fn a_second_address_learnt_later_is_dialled_once_and_then_counts_as_connected() {
    let mut net = two_hosts();
    assert!(net.drive(|n| n.nodes.iter().all(|x| x.peer_count() == 1)));
    net.run(Duration::from_secs(3));
    // Beacons announce the LAN address again and again.
    net.nodes[0].connect(second_addr(1));
    assert_settled_and_quiet(&mut net, |n| n.nodes[0].connect(second_addr(1)));
    assert_eq!(summary(&net, 0).2, 2, "node 0 dialled each address once");
}

#[test]
fn both_sides_dialling_each_others_second_address_converge() {
    let mut net = two_hosts();
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[0].connect(second_addr(1));
    net.nodes[1].connect(second_addr(0));
    net.nodes[0].subscribe("t");
    net.nodes[1].subscribe("t");
    assert_settled_and_quiet(&mut net, |n| {
        n.nodes[0].connect(second_addr(1));
        n.nodes[1].connect(second_addr(0));
    });
    // At most the four dials made, each completed once at both ends.
    for i in 0..2 {
        let (_, _, initiated, completed, _) = summary(&net, i);
        assert!(
            initiated <= 2 && completed <= 4,
            "node {i}: {initiated} {completed}"
        );
    }
    let now = net.now;
    net.nodes[0].publish(now, "t", b"x").unwrap();
    assert!(net.run_until_idle());
    assert_eq!(net.messages(1).len(), 1);
}

#[test]
fn when_the_kept_session_goes_its_addresses_are_dialled_again() {
    let mut net = two_hosts();
    net.nodes[0].connect(second_addr(1));
    assert!(net.run_until_idle());
    assert_eq!(summary(&net, 0).0, 1);
    // The peer goes silent: the session times out, and with it the alias
    // of the address it won over; the static peer is dialled again.
    let initiated = summary(&net, 0).2;
    net.muted[1] = true;
    net.run(Duration::from_secs(40));
    assert_eq!(net.nodes[0].peer_count(), 0);
    let redialled = summary(&net, 0).2;
    assert!(redialled > initiated, "the static peer is dialled again");
    net.nodes[0].connect(second_addr(1));
    assert_eq!(
        summary(&net, 0).2,
        redialled + 1,
        "the second address is free again"
    );
}

/// Two nodes that find each other at the same moment (a DHT lookup, a
/// tracker answer) dial each other, the second after it answered the
/// first's message 1 but before message 3 reached it. Dialling then would
/// cross the first dial after that session came up at the first dialler,
/// which would take the second dial for a restart while the second node
/// ranks the two by their key: each would close the other's choice. The
/// second node does not dial (the handshake it answers gives the
/// session); in either order, both keep one session and never lose it.
#[test]
fn a_dial_while_answering_the_peers_dial_is_not_sent() {
    for (first, second) in [(0, 1), (1, 0)] {
        let mut net = Net::new(2, "local", None);
        // Latency 5 ms: message 1 lands at 5 ms, message 2 at 10 ms and
        // message 3 at 15 ms; the second node dials at 7 ms.
        net.nodes[first].connect(addr(second));
        net.run(Duration::from_millis(7));
        assert_eq!(net.nodes[second].peer_count(), 0);
        net.nodes[second].connect(addr(first));
        assert!(net.run_until_idle());
        net.run(moss_mesh::RETIRE_GRACE + Duration::from_secs(1));
        for i in 0..2 {
            let (peers, sessions, initiated, completed, unknown) = summary(&net, i);
            let dialled = u64::from(i == first);
            assert_eq!(
                (peers, sessions, initiated, completed, unknown),
                (1, 1, dialled, 1, 0),
                "node {i} (node {first} dialled first)"
            );
            assert_eq!(connects(&net, i), 1, "node {i} connected once");
            assert_eq!(disconnects(&net, i), 0, "node {i} never disconnected");
        }
    }
}

/// Two nodes that dial each other at the same instant over a link much
/// faster than a millisecond (loopback): every handshake message of both
/// dials lands within one millisecond, and both ends still keep the same
/// one of the two sessions.
#[test]
fn simultaneous_dials_within_one_millisecond_keep_one_session() {
    let mut net = Net::new(2, "local", None);
    net.latency = Duration::from_micros(50);
    net.nodes[0].connect(addr(1));
    net.nodes[1].connect(addr(0));
    assert!(net.run_until_idle());
    net.run(moss_mesh::RETIRE_GRACE + Duration::from_secs(1));
    for i in 0..2 {
        let (peers, sessions, initiated, completed, unknown) = summary(&net, i);
        assert_eq!(
            (peers, sessions, initiated, completed, unknown),
            (1, 1, 1, 2, 0),
            "node {i}"
        );
        assert_eq!(connects(&net, i), 1, "node {i} connected once");
        assert_eq!(disconnects(&net, i), 0, "node {i} never disconnected");
    }
}
