//! NAT classification under heavy loss (10 % and 20 % each way, the
//! natlab suite's lossy section and worse), over many seeds: a full cone
//! must end `full_cone` (a lost probe order once made it a lasting
//! `restricted_cone`), and the restricted controls must never be called
//! `full_cone` on the way (a false positive is worse than a slow verdict).

mod common;

use common::{add_behind_nat, add_public};
use moss_mesh::Config;
use moss_sim::{LinkModel, NatKind, Sim};
use std::time::Duration;

/// The cone kinds classified, with the class each must end with.
const KINDS: [(NatKind, &str); 3] = [
    (NatKind::FullCone, "full_cone"),
    (NatKind::AddressRestricted, "restricted_cone"),
    (NatKind::PortRestricted, "port_restricted_cone"),
];

/// Public nodes (helpers and third parties for the probes).
const PUBLICS: u8 = 8;

/// What one kind did over the seeds of a run.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Nodes that ended with a wrong class (not `unknown`).
    wrong: usize,
    /// Nodes still `unknown` at the end (no usable third party came up).
    unknown: usize,
    /// Nodes of a restricted kind that were called `full_cone` at any time.
    false_full: usize,
    /// Nodes classified right at the end.
    right: usize,
    /// Sum of the seconds to the first right class (right nodes only).
    secs_to_right: u64,
}

/// [`PUBLICS`] public nodes and two nodes behind each cone kind, all given only
/// the first public node; the classes watched every second for `secs`.
fn run(seed: u64, loss: f64, secs: u64, tally: &mut [Tally; 3]) {
    let link = LinkModel {
        loss,
        ..LinkModel::default()
    };
    let mut sim = Sim::new(seed, link);
    let cfg = Config::default();
    let mut publics = Vec::new();
    for i in 1..=PUBLICS {
        publics.push(add_public(&mut sim, &cfg, i));
    }
    let mut natted = Vec::new();
    let mut k = 10u8;
    for (slot, &(kind, _)) in KINDS.iter().enumerate() {
        for _ in 0..2 {
            k += 1;
            let n = add_behind_nat(&mut sim, &cfg, k, kind);
            natted.push((n, slot, None::<u64>, false));
        }
    }
    for &p in &publics[1..] {
        sim.dial(p, publics[0]);
    }
    for &(n, _, _, _) in &natted {
        sim.dial(n, publics[0]);
    }
    for t in 1..=secs {
        sim.run_for(Duration::from_secs(1));
        for (n, slot, first_right, called_full) in natted.iter_mut() {
            let class = sim.node(*n).map(|x| x.reachability().nat_type().as_str());
            if class == Some(KINDS[*slot].1) && first_right.is_none() {
                *first_right = Some(t);
            }
            if class == Some("full_cone") && *slot != 0 {
                *called_full = true;
            }
        }
    }
    for &(n, slot, first_right, called_full) in &natted {
        let class = sim.node(n).map(|x| x.reachability().nat_type().as_str());
        let t = &mut tally[slot];
        t.false_full += usize::from(called_full);
        if class == Some(KINDS[slot].1) {
            t.right += 1;
            t.secs_to_right += first_right.unwrap_or(secs);
        } else if class == Some("unknown") {
            t.unknown += 1;
        } else {
            t.wrong += 1;
            eprintln!(
                "seed {seed} loss {loss}: {:?} ended {class:?}",
                KINDS[slot].0
            );
        }
    }
}

/// Runs `seeds` seeds at `loss` for `secs`: no restricted kind is ever
/// called `full_cone`, a full cone never ends with a restricted class, the
/// restricted kinds end with a wrong class at most `wrong_max` times each,
/// and each kind is still `unknown` at most `unknown_max` times.
fn check(loss: f64, seeds: u64, secs: u64, wrong_max: usize, unknown_max: usize) {
    let mut tally = [Tally::default(); 3];
    for seed in 1..=seeds {
        run(seed, loss, secs, &mut tally);
    }
    for (t, (kind, _)) in tally.iter().zip(KINDS) {
        eprintln!(
            "loss {loss}: {kind:?}: {} right (mean {:.1} s to the verdict), {} wrong, {} unknown, {} ever called full_cone",
            t.right,
            t.secs_to_right as f64 / t.right.max(1) as f64,
            t.wrong,
            t.unknown,
            t.false_full,
        );
    }
    for (t, (kind, _)) in tally.iter().zip(KINDS) {
        let max = if kind == NatKind::FullCone {
            0
        } else {
            wrong_max
        };
        assert!(
            t.wrong <= max,
            "loss {loss}: {kind:?} misclassified: {tally:?}"
        );
        assert!(
            t.unknown <= unknown_max,
            "loss {loss}: {kind:?} unknown: {tally:?}"
        );
        assert_eq!(
            t.false_full, 0,
            "loss {loss}: {kind:?} called full_cone: {tally:?}"
        );
    }
}

#[test]
fn cones_classify_right_at_ten_percent_loss() {
    // 150 s: the natlab suite's lossy section waits as long. Before
    // negatives were rechecked, 2 of the 200 full cones ended
    // `restricted_cone` and 1 restricted cone `port_restricted_cone`.
    check(0.10, 100, 150, 0, 5);
}

#[test]
fn cones_classify_right_at_twenty_percent_loss() {
    // Before the rechecks: 2 full cones ended `restricted_cone`, 6
    // restricted cones `port_restricted_cone`. The two restricted cones
    // still wrong there rechecked test II first (fewer third parties had
    // missed it) and found few usable third parties for test III in time
    // (every one had a session with them or was contacted). Since probe
    // orders go twice, test III's opener three times and helpers name
    // each of their peers in turn (session 17), none is wrong: seeds 1-300
    // ended 0 wrong at 10 % and 20 %, where 2 (20 %) and 3 (10 %, seeds
    // 101-200) restricted cones had ended `port_restricted_cone`.
    check(0.20, 100, 240, 0, 10);
}
