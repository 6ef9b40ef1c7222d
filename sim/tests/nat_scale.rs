//! The simulator at scale with NATs (ignored by default: minutes in a
//! release build): 10 000 real `mesh::Node`s, 70 % behind NATs of mixed
//! kinds, 20 topics. Prints, per pair of classes, the node pairs where a
//! hole punch was asked for and how many ended direct, beside whether plain
//! UDP can punch such a pair through real NATs, and why the punchable pairs
//! that did not end direct did not. Run with `sim/scripts/nat-scale.sh` (or
//! `cargo test --release -p moss-sim --test nat_scale -- --ignored
//! --nocapture`; `MOSS_SIM_NODES` changes the size).

use moss_mesh::nat::PunchState;
use moss_mesh::{NatType, Node, Path, PeerId};
use moss_sim::{NatKind, NatModel, Scenario, Sim};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The class a node of `kind` must conclude (`None`: a public node).
fn expected_class(kind: Option<NatKind>) -> NatType {
    match kind {
        None => NatType::Public,
        Some(NatKind::FullCone) => NatType::FullCone,
        Some(NatKind::AddressRestricted) => NatType::RestrictedCone,
        Some(NatKind::PortRestricted) => NatType::PortRestrictedCone,
        Some(NatKind::Symmetric) => NatType::SymmetricNat,
    }
}

fn punchable(a: Option<NatKind>, b: Option<NatKind>) -> bool {
    use NatKind::{PortRestricted, Symmetric};
    !matches!(
        (a, b),
        (Some(Symmetric), Some(Symmetric | PortRestricted))
            | (Some(PortRestricted), Some(Symmetric))
    )
}

fn has_udp_session(n: &Node, peer: &PeerId) -> bool {
    n.peers()
        .iter()
        .any(|p| p.peer == *peer && matches!(p.addr, Path::Udp(_)))
}

/// What one end of a pair knows of its punch toward the other.
fn end_view(n: &Node, peer: &PeerId) -> (Option<PunchState>, u32, u32) {
    (
        n.punch_state(peer),
        n.punch_offers(peer),
        n.punch_attempts(peer),
    )
}

/// Why a punchable pair that asked for a punch has no direct session at
/// the end, as one line per reason with its count.
fn breakdown(sim: &Sim) -> String {
    let online: Vec<usize> = (0..sim.nodes.len()).filter(|&i| sim.online(i)).collect();
    let index: HashMap<PeerId, usize> = online
        .iter()
        .filter_map(|&i| Some((sim.node(i)?.public_key(), i)))
        .collect();
    let mut wrong: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &online {
        let Some(n) = sim.node(i) else { continue };
        let want = expected_class(sim.nat_kind(i));
        let got = n.nat_verdict().class;
        if got != want {
            *wrong
                .entry(format!("{} as {}", want.as_str(), got.as_str()))
                .or_default() += 1;
        }
    }
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for &i in &online {
        let Some(a) = sim.node(i) else { continue };
        for (peer, _) in a.punch_states() {
            let Some(&j) = index.get(&peer) else { continue };
            let Some(b) = sim.node(j) else { continue };
            if !seen.insert((i.min(j), i.max(j))) {
                continue;
            }
            if !punchable(sim.nat_kind(i), sim.nat_kind(j)) {
                continue;
            }
            let pa = a.public_key();
            if has_udp_session(a, &peer) || has_udp_session(b, &pa) {
                *reasons.entry("direct").or_default() += 1;
                continue;
            }
            let (va, vb) = (end_view(a, &peer), end_view(b, &pa));
            let st = [va.0, vb.0];
            let misjudged = a.peer_nat_type(&peer) != expected_class(sim.nat_kind(j))
                || b.peer_nat_type(&pa) != expected_class(sim.nat_kind(i));
            let reason = if st.contains(&Some(PunchState::Punched)) {
                "punched, session gone by the end"
            } else if st.contains(&Some(PunchState::Unpunchable)) {
                "reported unpunchable"
            } else if va.1 == 0 && vb.1 == 0 {
                "no offer reached either end"
            } else if va.1 == 0 || vb.1 == 0 {
                "an offer reached one end only"
            } else if va.2 == 0 || vb.2 == 0 {
                "offers at both ends, an end fired no round"
            } else if misjudged {
                "both ends fired, a class misjudged"
            } else {
                "both ends fired, no session"
            };
            *reasons.entry(reason).or_default() += 1;
        }
    }
    let c = sim.total_stats().nat;
    let mut out = format!(
        "punch counters (every node): requests {} (refused by the forwarder {}), \
         introductions {}, offers carried out {} (refused for the budget {}, \
         duplicate {}), succeeded {}, failed {}\n",
        c.punch_requests,
        c.punch_requests_refused,
        c.punch_introductions,
        c.punch_attempts,
        c.punch_offers_refused,
        c.punch_offers_duplicate,
        c.punch_succeeded,
        c.punch_failed,
    );
    out += "punchable pairs that asked for a punch, by outcome:\n";
    for (r, n) in reasons {
        out += &format!("  {r}: {n}\n");
    }
    out += "nodes with the wrong class at the end:";
    if wrong.is_empty() {
        out += " none";
    }
    for (w, n) in wrong {
        out += &format!(" {w} {n};");
    }
    out
}

#[test]
#[ignore = "minutes in a release build; sim/scripts/nat-scale.sh runs it"]
fn ten_thousand_nodes_seventy_percent_behind_nats() {
    let nodes = std::env::var("MOSS_SIM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sc = Scenario {
        seed: 5,
        nodes,
        // Long enough to classify (40 s in the pair tests) and punch.
        warmup: Duration::from_secs(60),
        publish_window: Duration::from_secs(30),
        drain: Duration::from_secs(20),
        nat: NatModel {
            fraction: 0.7,
            kind: None,
            timeout: Duration::from_secs(30),
        },
        ..Scenario::default()
    };
    let started = std::time::Instant::now();
    let mut why = String::new();
    let r = sc.run_inspect(|sim| why = breakdown(sim));
    println!("{r}");
    println!("{why}");
    println!("wall time {:.0} s", started.elapsed().as_secs_f64());
    let s = r.punches.iter().fold((0, 0, 0), |a, p| {
        let punch = usize::from(p.plain_udp);
        (
            a.0 + punch * p.pairs,
            a.1 + punch * p.direct,
            a.2 + (1 - punch) * p.direct,
        )
    });
    let (pairs, direct, impossible) = s;
    println!(
        "plain-UDP-punchable pairs that asked for a punch: {direct}/{pairs} direct ({:.1} %)",
        100.0 * direct as f64 / pairs.max(1) as f64
    );
    assert!(pairs > 0, "no punch was asked for in {nodes} nodes\n{r}");
    assert_eq!(impossible, 0, "an unpunchable pair went direct\n{r}");
}
