//! An end's NAT mapping changes while it is relayed: its datagrams come
//! from a new address. The supernode's own session with it roams on the
//! first authenticated datagram, and the relay session's data plane
//! follows, so the pair goes on through the same relay session.

use super::*;

#[test]
fn a_relayed_end_whose_mapping_changes_keeps_its_relay_session() {
    let mut net = relayed_star(3, cfg(), &[(1, 2)], "m");
    let session = session_of(&net, 1, 2);
    assert!(session.is_some());
    let before: Vec<usize> = [1, 2].iter().map(|&i| net.events[i].len()).collect();
    // Node 1's NAT gives it a new port: what it sends comes from there,
    // and only what is sent there reaches it.
    let old = net.addrs[1];
    let new = SocketAddr::new(old.ip(), old.port() + 1);
    net.addrs[1] = new;
    net.run(Duration::from_secs(3));
    let sent = 20u32;
    // Each message arrives within the half second before the next: the
    // pair never waits for a re-handshake or a new relay session.
    for round in 0..sent {
        let now = net.now;
        net.nodes[1]
            .publish(now, "m", &round.to_le_bytes())
            .unwrap();
        net.nodes[2]
            .publish(now, "m", &(1000 + round).to_le_bytes())
            .unwrap();
        net.run(Duration::from_millis(500));
        let n = round as usize + 1;
        assert_eq!(
            net.messages(2, "m").len(),
            n,
            "1 -> 2 at once, round {round}"
        );
        assert_eq!(
            net.messages(1, "m").len(),
            n,
            "2 -> 1 at once, round {round}"
        );
    }
    for (k, (a, b)) in [(1, 2), (2, 1)].into_iter().enumerate() {
        assert_eq!(
            session_of(&net, a, b),
            session,
            "{a} kept the relay session"
        );
        let peer = net.id(b);
        let dropped = net.events[a][before[k]..]
            .iter()
            .any(|e| matches!(e, Event::PeerDisconnected { peer: p, .. } if *p == peer));
        assert!(!dropped, "{a} kept its session with {b}");
    }
    assert_eq!(net.nodes[0].relay_info().served_sessions, 1);
    let s0 = net.nodes[0].stats();
    assert_eq!(
        s0.relay_routes_moved, 1,
        "the supernode followed node 1 once"
    );
    assert_eq!(
        net.nodes[2].relay.client.probe_addrs(),
        vec![new],
        "node 2 probes node 1's new address for a direct path"
    );
}

/// The end's NAT rewrites the supernode's port on a new flow (a conntrack
/// clash once a port mapping exists): the end's own session with the
/// supernode moves to the rewritten address, while the data the
/// supernode forwards still comes from its old one. That is relayed data,
/// not a direct path: no event 7 to the supernode's address, and the pair
/// goes on through the relay (relay-lab, session 12: the mapped end took
/// the supernode's address as its peer's direct path and lost the pair).
#[test]
fn forwarded_data_from_the_supernodes_old_address_is_not_a_direct_path() {
    let mut net = relayed_star(3, cfg(), &[(1, 2)], "m");
    let session = session_of(&net, 2, 1);
    assert!(session.is_some());
    let before = net.events[2].len();
    let old = net.addrs[0];
    let new = SocketAddr::new(old.ip(), old.port() + 7);
    net.tap = Some((0, HashSet::new(), Vec::new()));
    net.rewritten = Some((0, 2, new));
    let moved = net.until(|net| net.path_to(2, 0) == Some(Path::Udp(new)));
    assert!(moved, "node 2's session with the supernode moved to {new}");
    assert!(
        matches!(net.path_to(1, 2), Some(Path::Relay { .. })),
        "node 1 still relayed: {:?}",
        net.path_to(1, 2)
    );
    let sent = 20u32;
    for round in 0..sent {
        let now = net.now;
        for (n, m) in [(1usize, round), (2, 1000 + round)] {
            let r = net.nodes[n].publish(now, "m", &m.to_le_bytes());
            assert!(r.is_ok(), "round {round}: node {n} lost the pair ({r:?})");
        }
        net.run(Duration::from_millis(500));
    }
    net.run(Duration::from_secs(3));
    let migrated: Vec<&Event> = net.events[2][before..]
        .iter()
        .filter(|e| matches!(e, Event::RelayMigrated { .. }))
        .collect();
    assert!(migrated.is_empty(), "node 2 migrated: {migrated:?}");
    assert!(
        matches!(net.path_to(2, 1), Some(Path::Relay { .. })),
        "node 2 still relayed: {:?}",
        net.path_to(2, 1)
    );
    assert_eq!(session_of(&net, 2, 1), session, "the same relay session");
    assert_eq!(net.messages(2, "m").len() as u32, sent, "1 -> 2 lost none");
    assert_eq!(net.messages(1, "m").len() as u32, sent, "2 -> 1 lost none");
}
