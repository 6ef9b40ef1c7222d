//! NAT classification by real `mesh::Node`s behind the simulator's NAT
//! models: three public nodes and two nodes behind each NAT kind, every
//! one given only the first public node as a static peer. Each learns its
//! class from the observations and third-party probes of the node's NAT
//! driver (binding and probe frames), with no STUN server.

mod common;

use common::{add_behind_nat, add_public};
use moss_mesh::Config;
use moss_sim::{LinkModel, NatKind, Sim};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

fn expected(kind: Option<NatKind>) -> &'static str {
    match kind {
        None => "public",
        Some(NatKind::FullCone) => "full_cone",
        Some(NatKind::AddressRestricted) => "restricted_cone",
        Some(NatKind::PortRestricted) => "port_restricted_cone",
        Some(NatKind::Symmetric) => "symmetric_nat",
    }
}

fn classify_run(seed: u64, link: LinkModel, run: Duration) -> Vec<(Option<NatKind>, String)> {
    let mut sim = Sim::new(seed, link);
    let cfg = Config::default();
    let mut nodes = Vec::new();
    for i in 1..=3u8 {
        nodes.push(add_public(&mut sim, &cfg, i));
    }
    let mut k = 10u8;
    for kind in NatKind::ALL {
        for _ in 0..2 {
            k += 1;
            nodes.push(add_behind_nat(&mut sim, &cfg, k, kind));
        }
    }
    for &n in &nodes[1..] {
        sim.dial(n, nodes[0]);
    }
    sim.run_for(run);
    nodes[1..]
        .iter()
        .map(|&n| {
            let class = sim
                .node(n)
                .map_or("offline", |node| node.reachability().nat_type().as_str());
            (sim.nat_kind(n), class.to_string())
        })
        .collect()
}

#[test]
fn every_node_learns_its_nat_class_from_its_peers() {
    for seed in 1..=10 {
        let got = classify_run(seed, LinkModel::default(), Duration::from_secs(60));
        for (kind, class) in &got {
            assert_eq!(class, expected(*kind), "seed {seed}: {kind:?} in {got:?}");
        }
    }
}

#[test]
fn classification_survives_five_percent_loss() {
    for seed in 1..=10 {
        let link = LinkModel {
            loss: 0.05,
            ..LinkModel::default()
        };
        let got = classify_run(seed, link, Duration::from_secs(240));
        for (kind, class) in &got {
            assert_eq!(class, expected(*kind), "seed {seed}: {kind:?} in {got:?}");
        }
    }
}

/// One node behind `kind` whose gateway reports a port mapping at `mapped`
/// (its observed address as its NAT maps it, or another IP), among eight
/// public nodes (fresh third parties for its probes); its class after
/// three minutes.
fn mapped_run(kind: NatKind, other_ip: bool) -> String {
    let mut sim = Sim::new(3, LinkModel::default());
    let cfg = Config::default();
    let mut publics = Vec::new();
    for i in 1..=8u8 {
        publics.push(add_public(&mut sim, &cfg, i));
    }
    let n = add_behind_nat(&mut sim, &cfg, 9, kind);
    for &p in &publics[1..] {
        sim.dial(p, publics[0]);
    }
    sim.dial(n, publics[0]);
    sim.run_for(Duration::from_secs(2));
    let observed = sim.address_of(n).expect("n runs");
    let mapped = if other_ip {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 32, 9)), observed.port())
    } else {
        observed
    };
    sim.with_node(n, |node, _| node.set_port_mapping(Some(mapped)));
    assert_eq!(sim.node(n).and_then(|x| x.port_mapping()), Some(mapped));
    sim.run_for(Duration::from_secs(180));
    sim.node(n)
        .map_or("offline", |node| node.reachability().nat_type().as_str())
        .to_string()
}

#[test]
fn a_port_mapping_counts_only_with_an_inbound_probe_and_its_own_ip() {
    // A mapping of exactly the observed address where strangers do get in
    // (the full cone lets the probes through): no NAT there, public.
    assert_eq!(mapped_run(NatKind::FullCone, false), "public");
    // The same claim where the NAT still filters (the gateway's mapping is
    // not real): the inbound probes fail, so never public.
    assert_ne!(mapped_run(NatKind::PortRestricted, false), "public");
    // A gateway whose external IP is not the observed one: a NAT beyond it.
    assert_eq!(mapped_run(NatKind::FullCone, true), "cgnat");
}
