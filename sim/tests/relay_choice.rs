//! Supernode choice by round trip, on real `mesh::Node`s in the simulator:
//! six public supernodes at different distances (the simulator's fixed
//! per-link latencies), pairs of nodes behind symmetric NATs connected to
//! all of them. Each pair's initiator asks the supernode with the lowest
//! round trip it measured (or one tied with it), and when that supernode
//! goes silent (leaves without a word), the pair is relayed again by the
//! nearest one left.

use moss_mesh::{Config, Identity, Node, Path, PeerId};
use moss_sim::{LinkModel, NatKind, Sim};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const SUPERNODES: u8 = 6;
const PAIRS: u8 = 6;

fn cfg() -> Config {
    let mut c = Config::default();
    c.nat.supernode_min_uptime_sec = 1;
    c
}

fn public(sim: &mut Sim, k: u8) -> usize {
    let a = SocketAddr::from((Ipv4Addr::new(203, 0, 113, k), 4000));
    let n = sim.add_node(cfg(), Identity::from_seed([k; 32]), a);
    sim.with_node(n, |node, _| node.set_local_addrs(&[a]));
    n
}

fn symmetric(sim: &mut Sim, k: u8) -> usize {
    let private = SocketAddr::from((Ipv4Addr::new(192, 168, k, 2), 4000));
    let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, k));
    let id = Identity::from_seed([k; 32]);
    let t = Duration::from_secs(30);
    let n = sim.add_node_behind_nat(cfg(), id, private, NatKind::Symmetric, ip, t);
    sim.with_node(n, |node, _| node.set_local_addrs(&[private]));
    n
}

fn key(sim: &Sim, i: usize) -> PeerId {
    sim.node(i).map(Node::public_key).expect("online")
}

/// The supernode relaying `a`'s session with `b`, as a node index.
fn relay_of(sim: &Sim, sns: &[usize], a: usize, b: usize) -> Option<usize> {
    let kb = key(sim, b);
    let via = sim
        .node(a)?
        .peers()
        .into_iter()
        .find(|p| p.peer == kb)
        .and_then(|p| match p.addr {
            Path::Relay { via, .. } => Some(via),
            _ => None,
        })?;
    sns.iter()
        .copied()
        .find(|&s| sim.node(s).map(Node::public_key) == Some(via))
}

/// True if `chosen` is as near to `a` as the choice rule allows among the
/// online supernodes: its round trip within max(20 ms, best/4) of the best,
/// i.e. one way within max(10 ms, best/4) plus jitter both ways.
fn near_enough(sim: &Sim, sns: &[usize], a: usize, chosen: usize) -> (bool, Duration, Duration) {
    let best = sns
        .iter()
        .filter(|&&s| sim.online(s))
        .map(|&s| sim.link_latency(a, s))
        .min()
        .unwrap_or_default();
    let got = sim.link_latency(a, chosen);
    let slack = Duration::from_millis(10).max(best / 4) + Duration::from_millis(2);
    (got <= best + slack, got, best)
}

#[test]
fn ends_ask_the_nearest_supernode_and_the_next_nearest_when_it_goes_silent() {
    let link = LinkModel {
        base_latency: Duration::from_millis(5),
        latency_spread: Duration::from_millis(200),
        jitter: Duration::from_millis(1),
        ..LinkModel::default()
    };
    let mut sim = Sim::new(41, link);
    let sns: Vec<usize> = (1..=SUPERNODES).map(|k| public(&mut sim, k)).collect();
    let pairs: Vec<(usize, usize)> = (0..PAIRS)
        .map(|i| {
            (
                symmetric(&mut sim, 20 + 2 * i),
                symmetric(&mut sim, 21 + 2 * i),
            )
        })
        .collect();
    for &(a, b) in &pairs {
        for &s in &sns {
            sim.dial(a, s);
            sim.dial(b, s);
        }
    }
    // Classification, promotion, announcements and round trips.
    sim.run_for(Duration::from_secs(40));
    for &s in &sns {
        assert!(
            sim.node(s).is_some_and(Node::is_supernode),
            "supernode {s} promoted"
        );
    }
    for &(a, b) in &pairs {
        let kb = key(&sim, b);
        assert_eq!(sim.with_node(a, |n, _| n.connect_via_relay(kb)), Some(true));
    }
    sim.run_for(Duration::from_secs(10));
    let mut report = Vec::new();
    let mut used = std::collections::BTreeMap::new();
    for &(a, b) in &pairs {
        let r = relay_of(&sim, &sns, a, b).unwrap_or_else(|| panic!("pair {a}-{b} relayed"));
        assert_eq!(
            relay_of(&sim, &sns, b, a),
            Some(r),
            "both ends on one relay"
        );
        let (ok, got, best) = near_enough(&sim, &sns, a, r);
        report.push(format!(
            "{a}-{b}: supernode {r} at {got:?} one way, nearest {best:?}"
        ));
        assert!(ok, "{}", report.join("\n"));
        *used.entry(r).or_insert(0) += 1;
    }
    println!("{}\nsessions per supernode: {used:?}", report.join("\n"));
    // The supernode of the first pair leaves without a word.
    let (a, b) = pairs[0];
    let gone = relay_of(&sim, &sns, a, b).unwrap_or_default();
    sim.kill(gone);
    sim.run_for(Duration::from_secs(60));
    let r = relay_of(&sim, &sns, a, b).expect("relayed again after the supernode went silent");
    assert_ne!(r, gone);
    assert_eq!(relay_of(&sim, &sns, b, a), Some(r));
    let (ok, got, best) = near_enough(&sim, &sns, a, r);
    assert!(
        ok,
        "after the loss: supernode {r} at {got:?}, nearest left {best:?}"
    );
    // Every pair is relayed by a supernode that is still there.
    for &(x, y) in &pairs {
        let r = relay_of(&sim, &sns, x, y);
        assert!(
            r.is_some_and(|r| r != gone),
            "pair {x}-{y} relayed by a live supernode: {r:?}"
        );
    }
}
