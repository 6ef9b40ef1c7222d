//! Hole punching by real `mesh::Node`s behind the simulator's NAT models:
//! two nodes of every pair of kinds, with one public rendezvous node as
//! their only static peer, share a topic. Each learns of the other from
//! messages the rendezvous forwards, asks it for an introduction, and the
//! pair ends with a direct session exactly when the kinds can be punched
//! with plain UDP; otherwise the rendezvous reports it unpunchable.

use moss_mesh::nat::PunchState;
use moss_mesh::{Config, Identity, Node};
use moss_sim::{LinkModel, NatKind, Sim};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `None` = a public node.
type Kind = Option<NatKind>;

fn punchable(a: Kind, b: Kind) -> bool {
    use NatKind::*;
    !matches!(
        (a, b),
        (Some(Symmetric), Some(Symmetric | PortRestricted))
            | (Some(PortRestricted), Some(Symmetric))
    )
}

fn add(sim: &mut Sim, kind: Kind, k: u8) -> usize {
    let cfg = Config::default();
    let id = Identity::from_seed([k; 32]);
    let n = match kind {
        None => {
            let a = SocketAddr::from((Ipv4Addr::new(203, 0, 113, k), 4000));
            let n = sim.add_node(cfg, id, a);
            sim.with_node(n, |node, _| node.set_local_addrs(&[a]));
            n
        }
        Some(kind) => {
            let private = SocketAddr::from((Ipv4Addr::new(192, 168, k, 2), 4000));
            let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, k));
            let n = sim.add_node_behind_nat(cfg, id, private, kind, ip, Duration::from_secs(30));
            sim.with_node(n, |node, _| node.set_local_addrs(&[private]));
            n
        }
    };
    sim.with_node(n, |node, _| node.subscribe("chat"));
    n
}

fn direct(sim: &Sim, i: usize, j: usize) -> bool {
    let Some(pj) = sim.node(j).map(Node::public_key) else {
        return false;
    };
    // A session through a supernode (the relay) is connected, not direct.
    sim.node(i).is_some_and(|n| {
        n.peers()
            .iter()
            .any(|p| p.peer == pj && matches!(p.addr, moss_mesh::Path::Udp(_)))
    })
}

fn pair(a: Kind, b: Kind, seed: u64) -> (bool, Option<PunchState>, Option<PunchState>) {
    let mut sim = Sim::new(seed, LinkModel::default());
    let p = add(&mut sim, None, 1);
    // Two more public nodes help the NATed ones classify.
    let helpers = [add(&mut sim, None, 2), add(&mut sim, None, 3)];
    let x = add(&mut sim, a, 10);
    let y = add(&mut sim, b, 11);
    for n in [helpers[0], helpers[1], x, y] {
        sim.dial(n, p);
    }
    // Classify first (the punch needs both classes), then chat.
    sim.run_for(Duration::from_secs(40));
    for round in 0..20u8 {
        for n in [x, y] {
            sim.with_node(n, |node, now| {
                let _ = node.publish(now, "chat", &[round]);
            });
        }
        sim.run_for(Duration::from_secs(1));
    }
    let (px, py) = (
        sim.node(x).map(Node::public_key),
        sim.node(y).map(Node::public_key),
    );
    let sx = px.and_then(|k| sim.node(y).and_then(|n| n.punch_state(&k)));
    let sy = py.and_then(|k| sim.node(x).and_then(|n| n.punch_state(&k)));
    (direct(&sim, x, y) && direct(&sim, y, x), sy, sx)
}

#[test]
fn every_punchable_pair_goes_direct_and_the_rest_are_reported() {
    let kinds: Vec<Kind> = std::iter::once(None)
        .chain(NatKind::ALL.iter().copied().map(Some))
        .collect();
    let mut report = Vec::new();
    for (i, &a) in kinds.iter().enumerate() {
        for &b in &kinds[i..] {
            let (direct, sa, sb) = pair(a, b, 7);
            report.push(format!("{a:?} <-> {b:?}: direct {direct}, {sa:?} / {sb:?}"));
            if punchable(a, b) {
                assert!(
                    direct,
                    "{a:?} <-> {b:?} should punch\n{}",
                    report.join("\n")
                );
            } else {
                // Kinds the planner calls unpunchable: the verdict is given,
                // or (seen since the merge with the relay and IK work) the
                // pair ended direct anyway: the simulator's symmetric NAT
                // allocates ports sequentially, so a predicted port can
                // land. Never silently stuck in between.
                assert!(
                    direct
                        || sa == Some(PunchState::Unpunchable)
                        || sb == Some(PunchState::Unpunchable),
                    "{a:?} <-> {b:?} neither direct nor reported unpunchable\n{}",
                    report.join("\n")
                );
            }
        }
    }
    println!("{}", report.join("\n"));
}
