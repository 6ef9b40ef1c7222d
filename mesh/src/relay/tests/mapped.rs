//! A port mapping gained mid-run migrates a relayed pair to direct
//! (MAPPED, `crate::nat`): the mapped end tells its relayed peer its
//! external address, the peer probes it, and both move with event 7.

use super::*;

/// Node 2's external address once its gateway maps its port.
fn mapped_addr() -> SocketAddr {
    "192.0.32.108:4000".parse().unwrap()
}

/// Nodes 1 and 2 relayed through supernode 0, node 2's gateway forwarding
/// [`mapped_addr`] to it; `tell` gives node 2 the mapping. Both publish
/// for 15 s; returns the network and how many messages each sent.
fn run_mapped(tell: bool) -> (Net, u32) {
    let mut net = relayed_star(3, cfg(), &[(1, 2)], "m");
    net.portmap = Some((mapped_addr(), 2));
    if tell {
        net.nodes[2].set_port_mapping(Some(mapped_addr()));
    }
    let mut sent = 0u32;
    for round in 0..60u32 {
        let now = net.now;
        for n in [1usize, 2] {
            net.nodes[n]
                .publish(now, "m", &[n as u8, round as u8])
                .unwrap();
        }
        sent += 1;
        net.run(Duration::from_millis(250));
    }
    net.run(Duration::from_secs(3));
    (net, sent)
}

#[test]
fn a_port_mapping_gained_mid_run_migrates_the_relayed_pair_with_event_7() {
    let (net, sent) = run_mapped(true);
    let to = [
        (1, 2, Path::Udp(mapped_addr())),
        (2, 1, Path::Udp(net.addrs[1])),
    ];
    for (a, b, direct) in to {
        assert_eq!(net.path_to(a, b), Some(direct), "node {a} direct");
        let migrated = net.events[a]
            .iter()
            .filter(|e| {
                matches!(e, Event::RelayMigrated { peer, from: Path::Relay { .. }, to }
                    if *peer == net.id(b) && *to == direct)
            })
            .count();
        assert_eq!(migrated, 1, "one event 7 at node {a}");
        assert_eq!(
            net.messages(b, "m").len() as u32,
            sent,
            "no message lost to {b}"
        );
    }
    assert!(net.nodes[2].stats().nat.mapped_sent >= 1);
    assert_eq!(net.nodes[1].stats().nat.mapped_received, 1);
    assert!(net.nodes[1].stats().nat.mapped_probes >= 1);
}

/// The control: the same gateway forwarding, but node 2 was never told it
/// is mapped: nobody learns the address, the pair stays relayed.
#[test]
fn without_the_mapping_known_the_pair_stays_relayed() {
    let (net, sent) = run_mapped(false);
    for (a, b) in [(1, 2), (2, 1)] {
        assert!(matches!(net.path_to(a, b), Some(Path::Relay { .. })));
        assert!(!net.events[a]
            .iter()
            .any(|e| matches!(e, Event::RelayMigrated { .. })));
        assert_eq!(net.messages(b, "m").len() as u32, sent);
    }
    assert_eq!(net.nodes[2].stats().nat.mapped_sent, 0);
}

/// MAPPED on a direct session is not taken (nothing to migrate from, and
/// a peer reached directly needs no probes).
#[test]
fn mapped_on_a_direct_session_is_ignored() {
    let mut net = star(2, &[0], cfg());
    let peer = net.id(0);
    let n = &mut net.nodes[1];
    let idx = n.table.by_peer(&peer).unwrap();
    n.nat_peer_mapped(idx, peer, mapped_addr());
    assert_eq!(n.stats().nat.mapped_ignored, 1);
    assert_eq!(n.stats().nat.mapped_received, 0);
}

/// A relayed peer that keeps announcing new mapped addresses makes us probe
/// only the first until its probes are spent: MAPPED cannot turn one frame
/// into a burst of probes at addresses of its choosing.
#[test]
fn a_new_mapped_address_waits_until_the_last_ones_probes_are_spent() {
    let mut net = relayed_star(3, cfg(), &[(1, 2)], "m");
    let peer = net.id(2);
    let n = &mut net.nodes[1];
    let idx = n.table.by_peer(&peer).unwrap();
    for port in 4000..4010u16 {
        n.nat_peer_mapped(idx, peer, SocketAddr::new(mapped_addr().ip(), port));
    }
    assert_eq!(n.stats().nat.mapped_received, 1);
    assert_eq!(n.stats().nat.mapped_ignored, 9);
    assert_eq!(
        n.mapped_probing(&peer),
        Some(mapped_addr()),
        "still probing the first address"
    );
}

/// A relayed pair whose direct path opens and which then dials it (a new
/// direct session, not the relayed one roaming): the direct session wins
/// the duplicate and each end reports event 7, relay to direct.
#[test]
fn a_direct_session_replacing_a_relayed_one_emits_event_7() {
    let mut net = relayed_star(3, cfg(), &[(1, 2)], "m");
    net.unblock(1, 2);
    let addr = net.addrs[2];
    net.nodes[1].connect(addr);
    let ok = net.until(|net| {
        net.path_to(1, 2) == Some(Path::Udp(net.addrs[2]))
            && net.path_to(2, 1) == Some(Path::Udp(net.addrs[1]))
    });
    assert!(ok, "direct at both ends");
    net.run(Duration::from_secs(1));
    for (a, b) in [(1, 2), (2, 1)] {
        let to = Path::Udp(net.addrs[b]);
        let n = net.events[a]
            .iter()
            .filter(|e| {
                matches!(e, Event::RelayMigrated { peer, from: Path::Relay { .. }, to: t }
                    if *peer == net.id(b) && *t == to)
            })
            .count();
        assert_eq!(n, 1, "one event 7 at node {a}");
    }
}
