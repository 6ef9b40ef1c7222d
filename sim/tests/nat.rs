//! NATs in front of real `mesh::Node`s: publics and cone-NATed nodes get
//! every message (they dial out and their traffic keeps the mappings),
//! unsolicited datagrams are dropped, and two nodes behind symmetric NATs
//! cannot reach each other directly (there is no relay or hole punching in
//! mesh yet), while two port-restricted cone nodes that dial each other at
//! the same time do connect.

use moss_mesh::{Config, Identity, PeerId};
use moss_sim::{LinkModel, NatKind, NatModel, Scenario, Sim};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

#[test]
fn half_the_nodes_behind_nats_publics_and_cones_get_every_message() {
    let sc = Scenario {
        seed: 21,
        nodes: 200,
        topics: 4,
        topics_per_node: 2,
        messages_per_topic: 5,
        link: LinkModel {
            loss: 0.05,
            ..LinkModel::default()
        },
        // Longer than the mapping timeout: keepalives must hold mappings.
        warmup: Duration::from_secs(10),
        publish_window: Duration::from_secs(30),
        drain: Duration::from_secs(15),
        nat: NatModel {
            fraction: 0.5,
            kind: None,
            timeout: Duration::from_secs(30),
        },
        ..Scenario::default()
    };
    let r = sc.run();
    println!("{r}");
    let nat = r.nat.unwrap_or_default();
    assert!(
        nat.dropped_unmapped + nat.dropped_filtered > 0,
        "seed {}: unsolicited datagrams were dropped",
        r.seed
    );
    for (class, delivered, expected) in &r.classes {
        if class != "symmetric" {
            assert!(*expected > 0, "seed {}: {class}", r.seed);
            assert_eq!(
                delivered, expected,
                "seed {}: {class} subscribers get every message\n{r}",
                r.seed
            );
        }
    }
    assert_eq!(r.classes.len(), 5, "seed {}: every class present", r.seed);
}

fn addr(a: u8, b: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, a, b), 4000))
}

fn ip(a: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(100, 64, 0, a))
}

fn knows(sim: &Sim, i: usize, j: usize) -> bool {
    let Some(pj) = sim.node(j).map(|n| n.public_key()) else {
        return false;
    };
    sim.node(i)
        .is_some_and(|n| n.peers().iter().any(|p| p.peer == pj))
}

fn id(k: u8) -> Identity {
    Identity::from_seed([k; 32])
}

/// A public rendezvous node and two NATed nodes of `kind` that dial it,
/// then dial each other's observed address at the same moment.
fn pair(kind: NatKind, seed: u64) -> (Sim, usize, usize, usize) {
    let mut sim = Sim::new(seed, LinkModel::default());
    let cfg = Config::default();
    let p = sim.add_node(cfg.clone(), id(1), addr(0, 1));
    let timeout = Duration::from_secs(30);
    let a = sim.add_node_behind_nat(cfg.clone(), id(2), addr(1, 2), kind, ip(2), timeout);
    let b = sim.add_node_behind_nat(cfg, id(3), addr(1, 3), kind, ip(3), timeout);
    sim.dial(a, p);
    sim.dial(b, p);
    sim.run_for(Duration::from_secs(2));
    // Both know the address the rendezvous node observed for the other.
    sim.dial(a, b);
    sim.dial(b, a);
    sim.run_for(Duration::from_secs(20));
    (sim, p, a, b)
}

#[test]
fn symmetric_nat_nodes_cannot_talk_directly_cone_nodes_can_by_dialling_together() {
    let (sim, p, a, b) = pair(NatKind::Symmetric, 31);
    assert!(
        knows(&sim, a, p) && knows(&sim, b, p),
        "both reach the public node"
    );
    assert!(
        !knows(&sim, a, b) && !knows(&sim, b, a),
        "symmetric to symmetric fails"
    );
    let nat = sim.nat_stats();
    assert!(nat.dropped_filtered > 0, "{nat:?}");

    let (sim, p, a, b) = pair(NatKind::PortRestricted, 31);
    assert!(knows(&sim, a, p) && knows(&sim, b, p));
    assert!(
        knows(&sim, a, b) && knows(&sim, b, a),
        "simultaneous open through two port-restricted cones"
    );

    // A public node cannot dial a NATed one that never sent to it.
    let mut sim = Sim::new(32, LinkModel::default());
    let cfg = Config::default();
    let q = sim.add_node(cfg.clone(), id(4), addr(0, 4));
    let c = sim.add_node_behind_nat(
        cfg,
        id(5),
        addr(1, 5),
        NatKind::AddressRestricted,
        ip(5),
        Duration::from_secs(30),
    );
    sim.dial(q, c);
    sim.run_for(Duration::from_secs(15));
    assert!(!knows(&sim, q, c), "unsolicited handshake dropped");
    assert!(sim.nat_stats().dropped_unmapped > 0);
}

#[test]
fn keepalives_hold_a_cone_mapping_through_idle_minutes() {
    let mut sim = Sim::new(33, LinkModel::default());
    let cfg = Config::default();
    let p = sim.add_node(cfg.clone(), id(6), addr(0, 6));
    let a = sim.add_node_behind_nat(
        cfg,
        id(7),
        addr(1, 7),
        NatKind::PortRestricted,
        ip(7),
        Duration::from_secs(30),
    );
    sim.dial(a, p);
    sim.run_for(Duration::from_secs(2));
    let before = sim.address_of(a);
    // No application traffic for three mapping timeouts.
    sim.run_for(Duration::from_secs(95));
    assert!(knows(&sim, a, p) && knows(&sim, p, a), "session alive");
    assert_eq!(sim.address_of(a), before, "same mapping all along");
    let pk: Option<PeerId> = sim.node(a).map(|n| n.public_key());
    let seen = sim
        .node(p)
        .and_then(|n| n.peers().into_iter().find(|x| Some(x.peer) == pk))
        .and_then(|x| x.addr.udp());
    assert_eq!(seen, before, "the public node sees the mapped address");
}
