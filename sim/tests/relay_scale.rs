//! Relays at scale (issue #12), on real `mesh::Node`s in the simulator:
//! 10,000 nodes (`RELAY_SIM_NODES`), 30 % public and 70 % behind NATs —
//! 20 % of all behind symmetric NATs, the rest spread over full-cone,
//! address-restricted and port-restricted cones — with 10 % datagram loss
//! (`RELAY_SIM_LOSS`) and 30 % churn (`RELAY_SIM_CHURN`). Every node is
//! one end of a subscriber pair (a topic only the two subscribe to). The
//! ends of a pair learn each other's address from a public node both
//! dialled (as a tracker would give it) and dial it at the same moment:
//! cone pairs punch, the rest time out and ask a supernode (the public
//! nodes promote themselves) to relay. Then `churn` of all nodes leave at
//! random moments of a 20 s window while every end that stays publishes 3
//! messages; each must reach the other end if it stayed (unless no public
//! the pair shares is left to relay it). Reports the direct and relayed
//! shares, relay sessions and relayed datagrams per serving supernode and
//! drops by limit. Then 30 % of the supernodes that serve sessions leave
//! at once; the pairs they relayed are counted back every 5 s, and pairs
//! that still share a public must be connected again and deliver. Every
//! phase runs and prints before the collected failures fail the test.
//!
//! **Latest runs:** BENCHMARKS.md "Session 17: NAT classification that
//! holds up under loss, and relays in the simulator again" (200 nodes:
//! seeds 2–4 and 6–10 pass, no pair unconnected before the churn on any
//! seed; seed 1 loses one message, seed 5 leaves a relayed pair one-way
//! after the exodus). Session 16's: "Session 16: relays in the simulator". **Session 12's runs** ("Session 12: relays in
//! the simulator, 100 % delivery"), loss 0.1, churn 0.3, after session 12's two fixes
//! (a re-handshake no longer makes the responder drop the peer, which at
//! a supernode ended the end's relay sessions; every IHAVE we send lets
//! the peer ask for the message once more): 200 nodes (debug, about 19 s
//! CPU) seeds 1, 3, 4 pass the whole test; seed 2 leaves pair 55
//! (symmetric ↔ symmetric) not connected before the churn, seed 5 lost
//! 2 of 282 on relayed pair 9 (not examined). 1,000 nodes (release, 115 s
//! CPU) seed 1: 1,420/1,420 delivered, but pair 260 (symmetric ↔
//! symmetric) not connected before the churn and 223/225 both ways after
//! the exodus. 10,000 nodes (release, before these two fixes;
//! BENCHMARKS.md "Session 12: the simulator at 10,000 nodes"): 1,043 s
//! CPU, 2.97 GB peak RSS, 40.8 M events; 5,000 pairs, 546 relayed
//! (10.9 %), 7 not connected before the churn; 14,515/14,536 delivered
//! (8 lost in pairs sharing a live public); exodus 48 of 71 pairs back
//! at 60 s; fails. On the merged tree (main `baaaa4a`): 867 s CPU,
//! 3.03 GB; 3 pairs not connected before the churn, 14,568/14,581
//! delivered with every lost one in a pair left with no live shared
//! public, 3 relayed pairs heard one way only after the exodus; fails
//! on those two checks. Session 11's fixes: IHAVE of own messages to topic peers
//! outside a thin mesh and to late subscribers (gossip), a relayed
//! session lost while its supernode lives is asked of it again, and
//! announcements are sent three times. `RELAY_SIM_WATCH=<pair>` prints a
//! pair every second of the churn and the drains and every 5 s of the exodus,
//! `RELAY_SIM_DEBUG=1` adds both ends' sessions and the shared
//! supernodes' relay sessions; every lost message is printed.
//!
//! `a_relay_scenario_repeats_exactly_with_its_seed` (default suite, 40
//! nodes, seeds 1, 3, 4, about 6 s in debug) fails when a run does not
//! repeat, naming the first datagram that differs (`Sim::trace`).
//!
//! Not in the default run (minutes of CPU and gigabytes of memory):
//! `cargo test -p moss-sim --release --test relay_scale -- --ignored --nocapture`
//! (`RELAY_SIM_NODES=2000` for a quicker look, `RELAY_SIM_SEED`,
//! `RELAY_SIM_LOSS`, `RELAY_SIM_CHURN`).

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
/// The churn window: nodes leave and ends publish during it.
const WINDOW: Duration = Duration::from_secs(20);
/// Messages each end that stays publishes during the window.
const MESSAGES: usize = 3;
/// Time after publishing for repairs (IHAVE to mesh peers under loss,
/// relay failover) before delivery is counted.
const DRAIN: Duration = Duration::from_secs(30);

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

/// The supernode relaying `a`'s session with `b`, if it is relayed.
fn relay_via(sim: &Sim, a: usize, b: usize) -> Option<PeerId> {
    let kb = key(sim, b)?;
    let p = sim.node(a)?.peers().into_iter().find(|p| p.peer == kb)?;
    match p.addr {
        Path::Relay { via, .. } => Some(via),
        _ => None,
    }
}

/// True when every public pair `k` shares has left.
fn no_shared(sim: &Sim, pairs: &Pairs, k: usize) -> bool {
    pairs.shared[k].iter().all(|&s| !sim.online(s))
}

/// What each end of pair `k` holds: its session with the other end (path),
/// its relay view, and for each shared public whether it is a supernode,
/// sees each end, and how many relay sessions it serves.
fn diagnose(sim: &Sim, pairs: &Pairs, k: usize) -> String {
    let (a, b) = pairs.ends[k];
    let mut out = format!("pair {k}:");
    for (x, y) in [(a, b), (b, a)] {
        let path = key(sim, y).and_then(|ky| {
            sim.node(x)?
                .peers()
                .into_iter()
                .find(|p| p.peer == ky)
                .map(|p| p.addr)
        });
        let ri = sim.node(x).map(Node::relay_info);
        let ps = key(sim, y).and_then(|ky| sim.node(x)?.punch_state(&ky));
        out += &format!(
            " | {x}->{y}: {path:?}, punch {ps:?}, relayed peers {}, known supernodes {}, last refusal {:?}",
            ri.as_ref().map_or(0, |r| r.relayed_peers.len()),
            ri.as_ref().map_or(0, |r| r.known_supernodes.len()),
            ri.and_then(|r| r.last_refusal)
        );
    }
    if std::env::var("RELAY_SIM_DEBUG").is_ok() {
        for (x, y) in [(a, b), (b, a)] {
            if let (Some(nx), Some(ky)) = (sim.node(x), key(sim, y)) {
                out += &format!(" | {x} of {y}: {}", nx.relay_debug(&ky));
            }
        }
        for &s in &pairs.shared[k] {
            if let (Some(ns), Some(ka)) = (sim.node(s), key(sim, a)) {
                out += &format!(" | at {s}: {}", ns.served_debug(&ka));
            }
        }
    }
    for &s in &pairs.shared[k] {
        let sn = sim.node(s).is_some_and(Node::is_supernode);
        let known = |e: usize| {
            key(sim, s).is_some_and(|ks| {
                sim.node(e)
                    .is_some_and(|n| n.relay_info().known_supernodes.contains(&ks))
            })
        };
        out += &format!(
            " | shared {s}: supernode {sn} (known to {a}: {}, to {b}: {}), sees {a} at {:?}, {b} at {:?}, serves {}",
            known(a),
            known(b),
            seen_by(sim, s, a),
            seen_by(sim, s, b),
            sim.node(s).map_or(0, |n| n.relay_info().served_sessions)
        );
    }
    out
}

/// Runs the simulator for [`DRAIN`], printing pair `watch` (if any)
/// every second.
fn drain(sim: &mut Sim, pairs: &Pairs, watch: Option<usize>) {
    let drained = sim.now + DRAIN;
    while let Some(k) = watch.filter(|_| sim.now + Duration::from_secs(1) < drained) {
        sim.run_for(Duration::from_secs(1));
        println!(
            "  watch {:.1} s: {}",
            sim.now.as_secs_f64(),
            diagnose(sim, pairs, k)
        );
    }
    sim.run_until(drained);
}

/// Up to ten of the pairs `ks` with their ends' kinds.
fn describe(pairs: &Pairs, kinds: &[Option<NatKind>], ks: &[usize]) -> String {
    let v: Vec<String> = ks
        .iter()
        .take(10)
        .map(|&k| {
            let (a, b) = pairs.ends[k];
            format!("{a}({:?})-{b}({:?})", kinds[a], kinds[b])
        })
        .collect();
    format!("{v:?}")
}

/// A message's publish: the moment, how the publisher reached the
/// receiver (`Some(true)` relayed), and whether the receiver was in its
/// mesh of the topic.
type AtPublish = (Duration, Option<bool>, bool);

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

/// What one run of the scenario gave: the fingerprint after each phase
/// (before the churn, after it, at the end), the messages to ends that
/// stayed (delivered, published), and what failed.
struct Outcome {
    fingerprints: [u64; 3],
    delivered: (usize, usize),
    failures: Vec<String>,
}

/// Runs the scenario with `n` nodes (even, at least 20), `seed`, datagram
/// `loss` and `churn`; `trace` keeps the simulator's record of every
/// datagram sent (for finding where two runs part). Prints every phase.
fn run(n: usize, seed: u64, loss: f64, churn: f64, trace: bool) -> (Outcome, Sim) {
    let started = Instant::now();
    let n = n.max(20) & !1;
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
    if trace {
        sim.trace = Some(Vec::new());
    }
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
    let publish_all = |sim: &mut Sim, pairs: &Pairs, live: &dyn Fn(usize) -> bool| {
        let mut ids = Vec::new();
        for (k, &(a, b)) in pairs.ends.iter().enumerate() {
            if !live(k) {
                continue;
            }
            let topic = format!("pair-{k}");
            for (side, (from, to)) in [(a, b), (b, a)].into_iter().enumerate() {
                let mut data = [0xeeu8; 16];
                data[..8].copy_from_slice(&(k as u64).to_le_bytes());
                data[8] = side as u8;
                if let Some(Ok(id)) = sim.publish(from, &topic, &data) {
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
    // Classification and promotion.
    sim.run_for(Duration::from_secs(40));
    let supernodes = publics
        .iter()
        .filter(|&&p| sim.node(p).is_some_and(Node::is_supernode))
        .count();
    // Each end dials the other where the first shared public that sees
    // both sees it (a tracker that has both; the first shared one may have
    // lost its session with one end, and the pair then never dialled: seed
    // 10's public-symmetric pair 60).
    for (k, &(a, b)) in pairs.ends.iter().enumerate() {
        let seen = pairs.shared[k].iter().find_map(|&r| {
            let (xa, xb) = (seen_by(&sim, r, a), seen_by(&sim, r, b));
            xa.zip(xb)
        });
        if let Some((xa, xb)) = seen {
            sim.dial_addr(a, xb);
            sim.dial_addr(b, xa);
        }
    }
    sim.run_for(Duration::from_secs(40));
    let (total, direct, relayed, missing) = census(&sim, &pairs, |_| true);
    println!(
        "{n} nodes ({} public, {supernodes} promoted), seed {seed}, loss {loss}, churn {churn}: before churn (fingerprint {:016x}) {total} pairs, {direct} direct, {relayed} relayed ({:.1} %), {} not connected {}",
        publics.len(),
        sim.fingerprint(),
        100.0 * relayed as f64 / total.max(1) as f64,
        missing.len(),
        describe(&pairs, &kinds, &missing)
    );
    let before_churn = missing.len();
    let mut fingerprints = [sim.fingerprint(), 0, 0];
    for &k in missing.iter().take(5) {
        println!("  {}", diagnose(&sim, &pairs, k));
    }

    // Churn: `churn` of all nodes (any kind, supernodes too) leave at
    // random moments of the window, while every end that stays publishes
    // MESSAGES messages at random moments of it.
    let t0 = sim.now;
    let at =
        |lcg: &mut Lcg| t0 + Duration::from_millis(lcg.below(WINDOW.as_millis() as usize) as u64);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = lcg.below(i + 1);
        order.swap(i, j);
    }
    let left: HashSet<usize> = order
        .iter()
        .copied()
        .take((n as f64 * churn).round() as usize)
        .collect();
    // (time, 0 = leave / 1 = publish, node or message index)
    let mut plan: Vec<(Duration, u8, usize)> = Vec::new();
    let mut sorted_left: Vec<usize> = left.iter().copied().collect();
    sorted_left.sort_unstable();
    for &l in &sorted_left {
        plan.push((at(&mut lcg), 0, l));
    }
    // Messages: (publisher, receiver, pair).
    let mut msgs: Vec<(usize, usize, usize)> = Vec::new();
    for (k, &(a, b)) in pairs.ends.iter().enumerate() {
        for (from, to) in [(a, b), (b, a)] {
            if left.contains(&from) {
                continue;
            }
            for _ in 0..MESSAGES {
                plan.push((at(&mut lcg), 1, msgs.len()));
                msgs.push((from, to, k));
            }
        }
    }
    plan.sort_unstable();
    let mark = sim.deliveries.len();
    let mut sent: Vec<(usize, [u8; 32], usize)> = Vec::new();
    let mut no_peers = 0usize;
    // For each message sent: publisher, and at publish (time, how the
    // publisher reached the receiver, receiver in its mesh).
    let mut sent_state: Vec<(usize, AtPublish)> = Vec::new();
    // RELAY_SIM_WATCH=k prints pair k every second of the window and drain.
    let watch: Option<usize> = std::env::var("RELAY_SIM_WATCH")
        .ok()
        .and_then(|v| v.parse().ok());
    if watch.is_some() {
        for s in 0..WINDOW.as_secs() {
            plan.push((t0 + Duration::from_secs(s), 2, 0));
        }
        plan.sort_unstable();
    }
    for (t, kind, arg) in plan {
        sim.run_until(t);
        if kind == 2 {
            if let Some(k) = watch {
                println!(
                    "  watch {:.1} s: {}",
                    sim.now.as_secs_f64(),
                    diagnose(&sim, &pairs, k)
                );
            }
            continue;
        }
        if kind == 0 {
            sim.kill(arg);
            continue;
        }
        let (from, to, k) = msgs[arg];
        let mut data = [0u8; 16];
        data[..8].copy_from_slice(&(arg as u64).to_le_bytes());
        let topic = format!("pair-{k}");
        let at_publish = (
            sim.now,
            link(&sim, from, to),
            key(&sim, to).is_some_and(|kt| {
                sim.node(from)
                    .is_some_and(|nd| nd.mesh_peers(&topic).contains(&kt))
            }),
        );
        match sim.publish(from, &topic, &data) {
            Some(Ok(id)) if !left.contains(&to) => {
                sent.push((to, id, k));
                sent_state.push((from, at_publish));
            }
            Some(Ok(_)) | None => {}
            Some(Err(_)) => no_peers += usize::from(!left.contains(&to)),
        }
    }
    drain(&mut sim, &pairs, watch);
    let stayed = |k: usize| {
        let (a, b) = pairs.ends[k];
        !left.contains(&a) && !left.contains(&b)
    };
    let got: HashSet<(usize, [u8; 32])> = sim.deliveries[mark..]
        .iter()
        .map(|d| (d.node, d.id))
        .collect();
    let lost: Vec<usize> = sent
        .iter()
        .filter(|(to, id, _)| !got.contains(&(*to, *id)))
        .map(|m| m.2)
        .collect();
    fingerprints[1] = sim.fingerprint();
    let (total, direct, relayed, missing) = census(&sim, &pairs, stayed);
    let stranded = missing
        .iter()
        .filter(|&&k| no_shared(&sim, &pairs, k))
        .count();
    let served: BTreeMap<usize, (usize, u64)> = publics
        .iter()
        .filter_map(|&p| {
            let nd = sim.node(p)?;
            Some((
                p,
                (
                    nd.relay_info().served_sessions,
                    nd.stats().relayed_datagrams,
                ),
            ))
        })
        .filter(|&(_, (s, _))| s > 0)
        .collect();
    let stats = sim.total_stats();
    let sessions: Vec<usize> = served.values().map(|v| v.0).collect();
    let mut per_sn: Vec<u64> = served.values().map(|v| v.1).collect();
    per_sn.sort_unstable();
    let live_supernodes = publics
        .iter()
        .filter(|&&p| sim.node(p).is_some_and(Node::is_supernode))
        .count();
    println!(
        "after {} of {n} nodes left over {} s ({} messages to ends that stayed published, {no_peers} refused for want of a peer): {total} pairs stayed, {direct} direct, {relayed} relayed ({:.1} %), {} not connected ({stranded} share no live public) {}; delivered {}/{} ({:.4} %), lost in pairs {:?} ({} of the lost in pairs that share no live public)",
        left.len(),
        WINDOW.as_secs(),
        sent.len(),
        100.0 * relayed as f64 / total.max(1) as f64,
        missing.len(),
        describe(&pairs, &kinds, &missing),
        sent.len() - lost.len(),
        sent.len(),
        100.0 * (sent.len() - lost.len()) as f64 / sent.len().max(1) as f64,
        lost.iter().take(10).collect::<Vec<_>>(),
        lost.iter().filter(|&&k| no_shared(&sim, &pairs, k)).count()
    );
    println!(
        "relay load: {live_supernodes} supernodes online, {} serve sessions: sessions per serving supernode mean {:.2}, max {} (limit {}); relayed datagrams per serving supernode median {}, max {}; drops: {} rate limited, {} unknown relay session; {} relayed datagrams in all",
        served.len(),
        sessions.iter().sum::<usize>() as f64 / sessions.len().max(1) as f64,
        sessions.iter().copied().max().unwrap_or(0),
        cfg.nat.relay_max_sessions,
        per_sn.get(per_sn.len() / 2).copied().unwrap_or(0),
        per_sn.last().copied().unwrap_or(0),
        stats.drops.get(DropReason::RelayRateLimited),
        stats.drops.get(DropReason::RelayUnknownSession),
        stats.relayed_datagrams
    );
    for &k in missing.iter().take(5) {
        println!("  {}", diagnose(&sim, &pairs, k));
    }
    for (m, (to, id, k)) in sent.iter().enumerate() {
        if got.contains(&(*to, *id)) {
            continue;
        }
        let (from, (t, path, in_mesh)) = sent_state[m];
        println!(
            "  lost: pair {k}, {from} -> {to} at {:.3} s (path then {path:?}, in mesh {in_mesh}) | {}",
            t.as_secs_f64(),
            diagnose(&sim, &pairs, *k)
        );
    }
    // Failures are collected, so that every phase runs and reports.
    let mut failures: Vec<String> = Vec::new();
    if before_churn > 0 {
        failures.push(format!(
            "{before_churn} pairs not connected before the churn"
        ));
    }
    let lost_stranded = lost.iter().filter(|&&k| no_shared(&sim, &pairs, k)).count();
    if lost.len() > lost_stranded {
        failures.push(format!(
            "{} messages to ends that stayed not delivered in pairs that share a live public",
            lost.len() - lost_stranded
        ));
    }
    if missing.len() > stranded {
        failures.push(format!(
            "pairs that stayed and share a live public not connected: {}",
            describe(&pairs, &kinds, &missing)
        ));
    }

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
    let gone_keys: HashSet<PeerId> = gone.iter().filter_map(|&g| key(&sim, g)).collect();
    // Pairs relayed through a supernode that leaves.
    let hit: Vec<usize> = (0..pairs.ends.len())
        .filter(|&k| {
            stayed(k) && !gone.contains(&pairs.ends[k].0) && !gone.contains(&pairs.ends[k].1)
        })
        .filter(|&k| {
            let (a, b) = pairs.ends[k];
            relay_via(&sim, a, b).is_some_and(|v| gone_keys.contains(&v))
        })
        .collect();
    for &g in &gone {
        sim.kill(g);
    }
    // A pair whose ends left is not counted; one that shares no live
    // public any more cannot be relayed again (reported).
    let alive = |k: usize| {
        let (a, b) = pairs.ends[k];
        stayed(k) && !gone.contains(&a) && !gone.contains(&b)
    };
    let stranded: Vec<usize> = (0..pairs.ends.len())
        .filter(|&k| alive(k) && no_shared(&sim, &pairs, k))
        .collect();
    // How the pairs that lost their relay come back, every 5 s.
    let mut series = Vec::new();
    for step in 1..=12u64 {
        sim.run_for(Duration::from_secs(5));
        let back = hit
            .iter()
            .filter(|&&k| {
                let (a, b) = pairs.ends[k];
                link(&sim, a, b).is_some() && link(&sim, b, a).is_some()
            })
            .count();
        series.push(format!("{}s:{back}", step * 5));
        if let Some(k) = watch {
            println!(
                "  watch {:.1} s: {}",
                sim.now.as_secs_f64(),
                diagnose(&sim, &pairs, k)
            );
        }
    }
    let mark = sim.deliveries.len();
    let ids = publish_all(&mut sim, &pairs, &alive);
    drain(&mut sim, &pairs, watch);
    let both_ways = delivered_pairs(&sim, &ids, mark);
    let (total, direct, relayed, missing) = census(&sim, &pairs, alive);
    let stranded_missing = missing.iter().filter(|k| stranded.contains(k)).count();
    println!(
        "after {} of {} serving supernodes left at once: {} pairs were relayed through them, back connected by {}; after 60 s {total} pairs, {direct} direct, {relayed} relayed, {} not connected ({stranded_missing} of them share no live public) {}; both ways delivered {both_ways}/{total}",
        gone.len(),
        serving.len(),
        hit.len(),
        series.join(" "),
        missing.len(),
        describe(&pairs, &kinds, &missing),
    );
    for &k in missing.iter().take(5) {
        println!("  {}", diagnose(&sim, &pairs, k));
    }
    // Connected pairs that did not hear each other both ways: how many of
    // their two messages were published (a publish without a peer is
    // refused) and delivered.
    let got: HashSet<(usize, [u8; 32])> = sim.deliveries[mark..]
        .iter()
        .map(|d| (d.node, d.id))
        .collect();
    for k in (0..pairs.ends.len()).filter(|&k| alive(k) && !missing.contains(&k)) {
        let mine: Vec<&(usize, [u8; 32], usize)> = ids.iter().filter(|m| m.2 == k).collect();
        let heard = mine.iter().filter(|m| got.contains(&(m.0, m.1))).count();
        if heard < 2 {
            println!(
                "  not both ways: pair {k}, {} published, {heard} delivered | {}",
                mine.len(),
                diagnose(&sim, &pairs, k)
            );
        }
    }
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s
                .rsplit(')')
                .next()?
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|x| x.parse().ok())
                .collect();
            Some(f.iter().sum::<u64>() as f64 / 100.0)
        })
        .unwrap_or(0.0);
    println!(
        "{:.0} s wall, {cpu:.0} s CPU (user + system, at 100 ticks/s), {} events, fingerprint {:016x}",
        started.elapsed().as_secs_f64(),
        sim.events,
        sim.fingerprint()
    );
    if missing.len() > stranded_missing {
        failures
            .push("after the supernodes left, pairs with a shared live public stay apart".into());
    }
    if both_ways + stranded_missing < total {
        failures.push("after the supernodes left, connected pairs did not hear each other".into());
    }
    fingerprints[2] = sim.fingerprint();
    let outcome = Outcome {
        fingerprints,
        delivered: (sent.len() - lost.len(), sent.len()),
        failures,
    };
    (outcome, sim)
}

#[test]
#[ignore = "10,000 nodes: about 15 min of CPU and 3 GB in release; see the module doc"]
fn ten_thousand_nodes_every_subscriber_pair_connects_direct_or_relayed() {
    let n: usize = env("RELAY_SIM_NODES", 10_000usize);
    let seed: u64 = env("RELAY_SIM_SEED", 1u64);
    let loss: f64 = env("RELAY_SIM_LOSS", 0.1f64);
    let churn: f64 = env("RELAY_SIM_CHURN", 0.3f64);
    let (outcome, _) = run(n, seed, loss, churn, false);
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
}

/// Two runs of a small lossy, churning relay scenario with the same seed
/// send the same datagrams at the same moments: every random choice is
/// the simulator's or a node's seeded generator, and nothing a node sends
/// follows the order of a randomly keyed hash map. (Without the sorted
/// resubscription round, each seed here parted in 2–3 runs of 4: a
/// node's session with a supernode and the one relayed through it share
/// a wire address, so their order reached the wire.) When two runs part,
/// the first datagram that differs is named. `RELAY_REPEAT_NODES` and
/// `RELAY_REPEAT_SEED` try another size or seed.
#[test]
fn a_relay_scenario_repeats_exactly_with_its_seed() {
    let n: usize = env("RELAY_REPEAT_NODES", 40usize);
    let seeds: Vec<u64> = match std::env::var("RELAY_REPEAT_SEED") {
        Ok(s) => s.parse().map(|s| vec![s]).unwrap_or_default(),
        Err(_) => vec![1, 3, 4],
    };
    assert!(!seeds.is_empty(), "RELAY_REPEAT_SEED is not a number");
    for seed in seeds {
        let (a, sa) = run(n, seed, 0.1, 0.3, true);
        let (b, sb) = run(n, seed, 0.1, 0.3, true);
        if a.fingerprints != b.fingerprints {
            let (ta, tb) = (sa.trace.unwrap_or_default(), sb.trace.unwrap_or_default());
            let first = ta.iter().zip(&tb).position(|(x, y)| x != y);
            panic!(
                "seed {seed}: fingerprints {:016x?} and {:016x?} differ; first differing datagram (of {} and {}): {:?} vs {:?}",
                a.fingerprints,
                b.fingerprints,
                ta.len(),
                tb.len(),
                first.map(|k| ta[k]),
                first.map(|k| tb[k]),
            );
        }
        assert_eq!(a.delivered, b.delivered, "seed {seed}");
        // Not vacuous: the run relays and delivers.
        assert!(a.delivered.1 > 0, "seed {seed}: nothing was published");
        assert!(
            sa.total_stats().relayed_datagrams > 0,
            "seed {seed}: nothing was relayed"
        );
    }
}
