//! Telemetry through the mesh: deltas gossiped on the internal topic, every
//! node converging to the same snapshot and chain digest, malformed deltas
//! counted, and nothing reaching the application.

mod common;

use common::{addr, Net};
use moss_mesh::{Config, DropReason, NetworkSnapshot, TELEMETRY_TOPIC};
use std::time::Duration;

fn telemetry_config(epoch_sec: u64, k_anon: u32) -> Config {
    let mut c = Config::default();
    c.telemetry.enabled = true;
    c.telemetry.epoch_sec = epoch_sec;
    c.telemetry.k_anon = k_anon;
    c
}

fn report(n: &moss_mesh::Node) -> serde_json::Value {
    serde_json::to_value(n.network_stats()).unwrap()
}

#[test]
fn nodes_converge_to_one_snapshot_and_chain() {
    let n = 8;
    let mut net = Net::with(n, |_| ("tele".into(), None), telemetry_config(60, 3));
    for i in 1..n {
        net.nodes[i].add_static_peer(addr(i - 1));
        net.nodes[i].add_static_peer(addr(0));
    }
    for node in &mut net.nodes {
        node.set_unix_origin(1_800_000_000);
    }
    // Run through two epoch boundaries so epochs are finalized into chains.
    net.run(Duration::from_secs(200));
    let first = report(&net.nodes[0]);
    assert!(first["contributors"].as_u64().unwrap() >= 1, "{first}");
    let chain0 = net.nodes[0].telemetry_chain(16);
    assert!(!chain0.is_empty(), "epochs were finalized");
    for i in 1..n {
        assert_eq!(net.nodes[i].telemetry_chain(16), chain0, "node {i} chain");
    }
    // The open epoch converges too once every node has emitted into it.
    net.run(Duration::from_secs(20));
    let snap0 = report(&net.nodes[0]);
    for i in 1..n {
        assert_eq!(
            report(&net.nodes[i])["epoch_digest"],
            snap0["epoch_digest"],
            "node {i}"
        );
    }
    // Telemetry never reaches the application, and is not listed as a topic.
    for i in 0..n {
        assert!(net.messages(i).is_empty());
        assert!(net.nodes[i].subscriptions().all(|t| t != TELEMETRY_TOPIC));
    }
}

#[test]
fn telemetry_off_reports_an_empty_object() {
    let net = Net::new(1, "x", None);
    assert!(matches!(
        net.nodes[0].network_stats(),
        NetworkSnapshot::Disabled(_)
    ));
    assert_eq!(
        serde_json::to_string(&net.nodes[0].network_stats()).unwrap(),
        "{}"
    );
}

#[test]
fn malformed_deltas_are_dropped_and_counted() {
    let mut net = Net::with(2, |_| ("tele".into(), None), telemetry_config(60, 1));
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[1].subscribe("app");
    net.run(Duration::from_secs(2));
    let now = net.now;
    net.nodes[0]
        .publish(now, TELEMETRY_TOPIC, b"\x01garbage")
        .unwrap();
    net.run(Duration::from_millis(100));
    assert_eq!(net.nodes[1].stats().drops.get(DropReason::BadStatDelta), 1);
    assert!(net.messages(1).is_empty());
    // The sender is scored for it (P4, invalid message).
    let sender = net.nodes[0].public_key();
    assert!(
        net.nodes[1].peer_score(&sender) < 0.0,
        "score {}",
        net.nodes[1].peer_score(&sender)
    );
}
