//! Relays at scale (issue #12), on real `mesh::Node`s in the simulator:
//! 10,000 nodes (`RELAY_SIM_NODES`), 30 % public and 70 % behind NATs —
//! 20 % of all behind symmetric NATs, the rest spread over full-cone,
//! address-restricted and port-restricted cones. Every node is one end of
//! a subscriber pair (a topic only the two subscribe to). The ends of a
//! pair learn each other's address from a public node both dialled (as a
//! tracker would give it) and dial it at the same moment: cone pairs punch,
//! the rest time out and ask a supernode (the public nodes promote
//! themselves) to relay. Asserts that every pair ends connected, direct or
//! relayed, and that each end gets the other's message; reports the
//! relayed share, relay sessions per supernode and drops by limit. Then 30
//! % of the supernodes that serve sessions leave at once; pairs that still
//! share a supernode must be connected again and deliver, the others are
//! counted.
//!
//! **Last run: fails.** 2,000 nodes, seed 1 (16:58–17:13 UTC, load
//! 21–30, 681 s): 999 of 1,000 pairs connected (907 direct, 92 relayed,
//! 115 supernodes serving 1–2 sessions, no bucket drops), one
//! port-restricted ↔ symmetric pair not connected after 40 s; not yet
//! understood. The 10,000-node run has not been made.
//!
//! Not in the default run (minutes of CPU and gigabytes of memory):
//! `cargo test -p moss-sim --release --test relay_scale -- --ignored --nocapture`
//! (`RELAY_SIM_NODES=2000` for a quicker look, `RELAY_SIM_SEED`,
//! `RELAY_SIM_LOSS` for a loss rate).

use moss_mesh::{Config, DropReason, Identity, Node, Path, PeerId};
use moss_sim::scenario::{honest_addr, nat_ip, private_addr};
use moss_sim::{LinkModel, NatKind, Sim};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Public nodes a pair shares (both ends dial them).
const SHARED: usize = 3;
/// Other public nodes each end dials (observers for classification).
const RANDOM: usize = 2;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator for the layout (the simulator's own
/// RNG drives everything else).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }
}

fn key(sim: &Sim, i: usize) -> Option<PeerId> {
    sim.node(i).map(Node::public_key)
}

/// How `a` reaches `b`: `Some(true)` relayed, `Some(false)` direct.
fn link(sim: &Sim, a: usize, b: usize) -> Option<bool> {
    let kb = key(sim, b)?;
    let p = sim.node(a)?.peers().into_iter().find(|p| p.peer == kb)?;
    match p.addr {
        Path::Relay { .. } => Some(true),
        Path::Udp(_) => Some(false),
        _ => None,
    }
}

/// Where `via` sees node `i` (its session's UDP address).
fn seen_by(sim: &Sim, via: usize, i: usize) -> Option<SocketAddr> {
    let k = key(sim, i)?;
    sim.node(via)?
        .peers()
        .into_iter()
        .find(|p| p.peer == k)
        .and_then(|p| p.addr.udp())
}

struct Pairs {
    ends: Vec<(usize, usize)>,
    shared: Vec<[usize; SHARED]>,
}

/// Pairs `live` selects: how many, direct, relayed, and the ones not
/// connected both ways.
fn census(
    sim: &Sim,
    pairs: &Pairs,
    live: impl Fn(usize) -> bool,
) -> (usize, usize, usize, Vec<usize>) {
    let (mut total, mut direct, mut relayed) = (0, 0, 0);
    let mut missing = Vec::new();
    for (k, &(a, b)) in pairs.ends.iter().enumerate() {
        if !live(k) {
            continue;
        }
        total += 1;
        match (link(sim, a, b), link(sim, b, a)) {
            (Some(false), Some(false)) => direct += 1,
            (Some(_), Some(_)) => relayed += 1,
            _ => missing.push(k),
        }
    }
    (total, direct, relayed, missing)
}

#[test]
#[ignore = "10,000 nodes: minutes in release; see the module doc"]
fn ten_thousand_nodes_every_subscriber_pair_connects_direct_or_relayed() {
    let started = Instant::now();
    let n: usize = env("RELAY_SIM_NODES", 10_000usize).max(20) & !1;
    let seed: u64 = env("RELAY_SIM_SEED", 1u64);
    let loss: f64 = env("RELAY_SIM_LOSS", 0.0f64);
    let mut cfg = Config::default();
    cfg.nat.supernode_min_uptime_sec = 1;
    cfg.max_peers = 400;
    let mut sim = Sim::new(
        seed,
        LinkModel {
            loss,
            ..LinkModel::default()
        },
    );
    let mut lcg = Lcg(seed ^ 0x5eed);
    // Kinds: 30 % public, 20 % symmetric, the rest the three cones.
    let mut kinds: Vec<Option<NatKind>> = (0..n)
        .map(|i| match i * 10 / n {
            0..=2 => None,
            3 | 4 => Some(NatKind::Symmetric),
            _ => Some(
                [
                    NatKind::FullCone,
                    NatKind::AddressRestricted,
                    NatKind::PortRestricted,
                ][i % 3],
            ),
        })
        .collect();
    for i in (1..n).rev() {
        let j = lcg.below(i + 1);
        kinds.swap(i, j);
    }
    for (i, kind) in kinds.iter().enumerate() {
        let id = Identity::from_seed({
            let mut s = [0x77u8; 32];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s
        });
        let node = match kind {
            None => {
                let a = honest_addr(i);
                let x = sim.add_node(cfg.clone(), id, a);
                sim.with_node(x, |nd, _| nd.set_local_addrs(&[a]));
                x
            }
            Some(k) => {
                let p = private_addr(i);
                let x = sim.add_node_behind_nat(
                    cfg.clone(),
                    id,
                    p,
                    *k,
                    nat_ip(i),
                    Duration::from_secs(30),
                );
                sim.with_node(x, |nd, _| nd.set_local_addrs(&[p]));
                x
            }
        };
        assert_eq!(node, i);
    }
    let publics: Vec<usize> = (0..n).filter(|&i| kinds[i].is_none()).collect();
    // Pairs: a shuffled order, two by two; each shares SHARED publics.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = lcg.below(i + 1);
        order.swap(i, j);
    }
    let mut pairs = Pairs {
        ends: Vec::new(),
        shared: Vec::new(),
    };
    for (k, w) in order.chunks(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        let mut sh = [0usize; SHARED];
        for s in &mut sh {
            *s = loop {
                let p = publics[lcg.below(publics.len())];
                if p != a && p != b {
                    break p;
                }
            };
        }
        let topic = format!("pair-{k}");
        for e in [a, b] {
            sim.with_node(e, |nd, _| nd.subscribe(&topic));
            for &s in &sh {
                sim.dial(e, s);
            }
            for _ in 0..RANDOM {
                let p = publics[lcg.below(publics.len())];
                if p != e {
                    sim.dial(e, p);
                }
            }
        }
        pairs.ends.push((a, b));
        pairs.shared.push(sh);
    }
    // Classification and promotion.
    sim.run_for(Duration::from_secs(40));
    let supernodes = publics
        .iter()
        .filter(|&&p| sim.node(p).is_some_and(Node::is_supernode))
        .count();
    // Each end dials the other where the first shared public sees it.
    for (k, &(a, b)) in pairs.ends.iter().enumerate() {
        let r = pairs.shared[k][0];
        if let (Some(xa), Some(xb)) = (seen_by(&sim, r, a), seen_by(&sim, r, b)) {
            sim.dial_addr(a, xb);
            sim.dial_addr(b, xa);
        }
    }
    sim.run_for(Duration::from_secs(40));
    let publish_all = |sim: &mut Sim, pairs: &Pairs, live: &dyn Fn(usize) -> bool| {
        let mut ids = Vec::new();
        for (k, &(a, b)) in pairs.ends.iter().enumerate() {
            if !live(k) {
                continue;
            }
            let topic = format!("pair-{k}");
            for (from, to) in [(a, b), (b, a)] {
                if let Some(Ok(id)) = sim.publish(from, &topic, &[k as u8; 16]) {
                    ids.push((to, id, k));
                }
            }
        }
        ids
    };
    let delivered_pairs = |sim: &Sim, ids: &[(usize, [u8; 32], usize)], from: usize| {
        let got: HashSet<(usize, [u8; 32])> = sim.deliveries[from..]
            .iter()
            .map(|d| (d.node, d.id))
            .collect();
        let mut per: BTreeMap<usize, u8> = BTreeMap::new();
        for &(to, id, k) in ids {
            if got.contains(&(to, id)) {
                *per.entry(k).or_default() += 1;
            }
        }
        per.values().filter(|&&c| c == 2).count()
    };
    let mark = sim.deliveries.len();
    let ids = publish_all(&mut sim, &pairs, &|_| true);
    sim.run_for(Duration::from_secs(15));
    let both_ways = delivered_pairs(&sim, &ids, mark);
    let (total, direct, relayed, missing) = census(&sim, &pairs, |_| true);
    let served: BTreeMap<usize, usize> = publics
        .iter()
        .filter_map(|&p| sim.node(p).map(|nd| (p, nd.relay_info().served_sessions)))
        .filter(|&(_, s)| s > 0)
        .collect();
    let stats = sim.total_stats();
    let max_served = served.values().copied().max().unwrap_or(0);
    let mean_served = served.values().sum::<usize>() as f64 / served.len().max(1) as f64;
    println!(
        "{n} nodes ({} public, {supernodes} promoted), seed {seed}, loss {loss}: {total} pairs, {direct} direct, {relayed} relayed ({:.1} %), {} not connected; both ways delivered {both_ways}/{total}",
        publics.len(),
        100.0 * relayed as f64 / total.max(1) as f64,
        missing.len()
    );
    println!(
        "relay sessions: {} supernodes serve any, mean {mean_served:.2}, max {max_served} (limit {}); drops: {} rate limited, {} unknown relay session; {} relayed datagrams",
        served.len(),
        cfg.nat.relay_max_sessions,
        stats.drops.get(DropReason::RelayRateLimited),
        stats.drops.get(DropReason::RelayUnknownSession),
        stats.relayed_datagrams
    );
    let show: Vec<String> = missing
        .iter()
        .take(10)
        .map(|&k| {
            let (a, b) = pairs.ends[k];
            format!("{a}({:?})-{b}({:?})", kinds[a], kinds[b])
        })
        .collect();
    assert!(missing.is_empty(), "pairs not connected: {show:?}");
    assert_eq!(both_ways, total, "every pair hears the other");

    // 30 % of the supernodes that serve sessions leave at once.
    let mut serving: Vec<usize> = served.keys().copied().collect();
    for i in (1..serving.len()).rev() {
        let j = lcg.below(i + 1);
        serving.swap(i, j);
    }
    let gone: HashSet<usize> = serving
        .iter()
        .copied()
        .take(serving.len() * 3 / 10)
        .collect();
    for &g in &gone {
        sim.kill(g);
    }
    // A pair whose ends left is not counted; one that shares no live
    // supernode any more cannot be relayed again (reported).
    let alive = |k: usize| {
        let (a, b) = pairs.ends[k];
        !gone.contains(&a) && !gone.contains(&b)
    };
    let stranded = (0..pairs.ends.len())
        .filter(|&k| alive(k) && link(&sim, pairs.ends[k].0, pairs.ends[k].1) == Some(true))
        .filter(|&k| pairs.shared[k].iter().all(|s| gone.contains(s)))
        .count();
    sim.run_for(Duration::from_secs(60));
    let mark = sim.deliveries.len();
    let ids = publish_all(&mut sim, &pairs, &alive);
    sim.run_for(Duration::from_secs(15));
    let both_ways = delivered_pairs(&sim, &ids, mark);
    let (total, direct, relayed, missing) = census(&sim, &pairs, alive);
    println!(
        "after {} of {} serving supernodes left at once: {total} pairs, {direct} direct, {relayed} relayed, {} not connected ({stranded} shared no live supernode); both ways delivered {both_ways}/{total}; {:.0} s wall",
        gone.len(),
        serving.len(),
        missing.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        missing.len() <= stranded,
        "only pairs without a shared live supernode stay apart"
    );
    assert!(
        both_ways + stranded >= total,
        "every reconnected pair hears the other"
    );
}
