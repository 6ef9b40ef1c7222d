//! The simulator at scale with NATs (ignored by default: minutes in a
//! release build): 10 000 real `mesh::Node`s, 70 % behind NATs of mixed
//! kinds, 20 topics. Prints, per pair of classes, the node pairs where a
//! hole punch was asked for and how many ended direct, beside whether plain
//! UDP can punch such a pair through real NATs. Run with
//! `sim/scripts/nat-scale.sh` (or `cargo test --release -p moss-sim --test
//! nat_scale -- --ignored --nocapture`; `MOSS_SIM_NODES` changes the size).

use moss_sim::{NatModel, Scenario};
use std::time::Duration;

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
    let r = sc.run();
    println!("{r}");
    println!("wall time {:.0} s", started.elapsed().as_secs_f64());
    let (pairs, direct): (usize, usize) = r
        .punches
        .iter()
        .filter(|p| p.plain_udp)
        .fold((0, 0), |a, p| (a.0 + p.pairs, a.1 + p.direct));
    println!(
        "plain-UDP-punchable pairs that asked for a punch: {direct}/{pairs} direct ({:.1} %)",
        100.0 * direct as f64 / pairs.max(1) as f64
    );
    assert!(pairs > 0, "no punch was asked for in {nodes} nodes\n{r}");
}
