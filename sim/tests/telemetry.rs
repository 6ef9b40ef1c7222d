//! Telemetry at scale: 500 real nodes on the simulator's lossy network
//! gossip stat deltas on the internal topic and converge to one hash chain.
//! Addresses are in-memory labels only; nothing touches a socket.
//!
//! A scale run: it runs in an optimised build only (`cargo test --release
//! -p moss-sim --test telemetry`, which `scripts/test-all.sh` runs in its
//! `sim-release` phase); a debug build lists it as ignored.

use moss_mesh::Config;
use moss_sim::overlay::telemetry_network;
use moss_sim::LinkModel;
use std::time::Duration;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "scale run: CI runs it in --release (scripts/test-all.sh, phase sim-release)"
)]
fn five_hundred_nodes_with_loss_converge_to_one_chain() {
    let seed = 7;
    let n = 500;
    let mut cfg =
        Config::from_json(r#"{"trackers":[],"dht_enabled":false,"lan_discovery_enabled":false}"#)
            .unwrap();
    cfg.telemetry.enabled = true;
    // 10 s epochs: each node contributes twice per epoch (first emission
    // jittered over 2 s, one re-gossip 5 s later), so losses still heal by
    // re-gossip as with longer epochs, and four epochs take 32 s instead of
    // 80. Simulator cost is proportional to deltas published (each one is
    // verified by all 500 nodes).
    cfg.telemetry.epoch_sec = 10;
    // Degree clamped to 1: a node's degree changes with every handshake
    // while the overlay forms, and each change republishes its delta; with
    // the clamp only the first connection does. Degree is not asserted.
    cfg.telemetry.degree_cap = 1;
    cfg.telemetry.k_anon = 5;
    let mut sim = telemetry_network(
        seed,
        n,
        LinkModel {
            loss: 0.05,
            ..LinkModel::default()
        },
        &cfg,
        1_800_000_000,
    );
    // Four epochs: the first two are finalized into every chain, the
    // fourth is open and holds the contributions of its first 2 s.
    sim.run_for(Duration::from_secs(33));
    let chain0 = sim.node(0).unwrap().telemetry_chain(8);
    assert!(
        chain0.len() >= 2,
        "seed {seed}: epochs finalized: {}",
        chain0.len()
    );
    let mut differing = 0;
    for i in 0..n {
        if sim.node(i).unwrap().telemetry_chain(8) != chain0 {
            differing += 1;
        }
    }
    assert_eq!(
        differing, 0,
        "seed {seed}: {differing} of {n} nodes disagree on the chain"
    );
    // The open epoch holds every node's contribution and a sane node count.
    let snap = serde_json::to_value(sim.node(0).unwrap().network_stats()).unwrap();
    let contributors = snap["contributors"].as_u64().unwrap_or(0);
    assert!(
        contributors >= (n as u64) * 98 / 100,
        "seed {seed}: {contributors} contributors: {snap}"
    );
    let estimate = snap["node_count_estimate"].as_u64().unwrap_or(0);
    assert!(
        (450..=550).contains(&estimate),
        "seed {seed}: node count estimate {estimate}"
    );
    assert_eq!(snap["k_anon_ok"], true);
}
