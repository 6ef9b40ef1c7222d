//! The flow the mesh node and the gateway drive, through the public API
//! only: deltas over the wire bytes, `/api/stats` and `/api/chain` JSON, and
//! the explorer's verification of chains parsed back from that JSON.

use moss_telemetry::{
    cross_check, verify, ApplyError, ChainLink, CrossCheckError, StatDelta, Telemetry,
    TelemetryConfig,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const EPOCH_SEC: u64 = 60;
const T0: u64 = 1_800_000_000;

fn node(i: u8) -> Telemetry {
    let cfg: TelemetryConfig =
        serde_json::from_str(r#"{"enabled": true, "epoch_sec": 60, "k_anon": 3}"#).unwrap();
    Telemetry::new(cfg, [i; 32]).unwrap()
}

/// Ticks the node every second for `secs` seconds from `start`, collecting
/// what it emits as wire bytes.
fn run(t: &mut Telemetry, start: u64, secs: u64, rng: &mut ChaCha20Rng) -> Vec<Vec<u8>> {
    (start..start + secs)
        .filter_map(|now| t.tick(now, rng))
        .map(|d| d.encode())
        .collect()
}

/// One epoch: every node runs for the first 20 s (first emissions are
/// jittered over 15 s); every emitted delta then reaches every node.
fn round(nodes: &mut [Telemetry], start: u64, rng: &mut ChaCha20Rng) {
    let wires: Vec<Vec<u8>> = nodes
        .iter_mut()
        .flat_map(|n| run(n, start, 20, rng))
        .collect();
    for n in nodes.iter_mut() {
        for w in &wires {
            let d = StatDelta::decode(w).unwrap();
            n.apply_delta(&d, start + 20).unwrap();
        }
    }
}

fn chain_json(t: &Telemetry, limit: usize) -> String {
    serde_json::to_string(&t.chain().recent(limit)).unwrap()
}

#[test]
fn gateways_serve_agreeing_verifiable_chains() {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let mut nodes: Vec<Telemetry> = (1..=6).map(node).collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        n.set_degree(i as u32 * 3);
        n.set_nat(["public", "cgnat", "symmetric_nat"][i % 3])
            .unwrap();
        n.record_bandwidth(1 << 20, 1 << 19);
    }
    for k in 0..6 {
        round(&mut nodes, T0 + k * EPOCH_SEC, &mut rng);
    }
    // A late gateway joins two epochs before the end: it holds the same
    // states for the epochs it saw but starts its chain from zero.
    let mut late = node(99);
    for k in 6..10 {
        let now = T0 + k * EPOCH_SEC;
        round(&mut nodes, now, &mut rng);
        for d in nodes[0].state_deltas() {
            let _ = late.apply_delta(&StatDelta::decode(&d.encode()).unwrap(), now);
        }
        for w in run(&mut late, now, 20, &mut rng) {
            let d = StatDelta::decode(&w).unwrap();
            for n in nodes.iter_mut() {
                n.apply_delta(&d, now + 20).unwrap();
            }
        }
    }

    // /api/stats of two gateways: identical JSON.
    let stats_a = nodes[0].snapshot().to_json();
    let stats_b = nodes[1].snapshot().to_json();
    assert_eq!(stats_a, stats_b);
    let v: serde_json::Value = serde_json::from_str(&stats_a).unwrap();
    assert_eq!(v["k_anon_ok"], true);
    assert_eq!(v["contributors"], 7);

    // /api/chain?limit=64, parsed back as the explorer does.
    let a: Vec<ChainLink> = serde_json::from_str(&chain_json(&nodes[0], 64)).unwrap();
    let b: Vec<ChainLink> = serde_json::from_str(&chain_json(&nodes[1], 64)).unwrap();
    let c: Vec<ChainLink> = serde_json::from_str(&chain_json(&late, 64)).unwrap();
    assert_eq!(a.len(), 8);
    for chain in [&a, &b, &c] {
        verify(chain).unwrap();
    }
    let ab = cross_check(&a, &b).unwrap();
    assert_eq!((ab.common_epochs, ab.digests_agree), (8, 8));
    // The late gateway agrees on the states of the epochs it saw fully.
    let ac = cross_check(&a, &c).unwrap();
    assert!(ac.common_epochs >= 1);
    assert_eq!(ac.states_agree + ac.digests_agree, ac.common_epochs);

    // A tampered chain fails: change one state commitment in the middle.
    let mut forged = b.clone();
    forged[4].state_digest = c.last().and_then(|l| l.state_digest);
    assert!(verify(&forged).is_err());
    assert!(matches!(
        cross_check(&a, &forged),
        Err(CrossCheckError::StateMismatch { .. })
    ));
}

#[test]
fn bad_wire_input_is_rejected_without_panic() {
    let mut t = node(1);
    assert!(StatDelta::decode(&[]).is_err());
    assert!(StatDelta::decode(&[1, 2, 3]).is_err());
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let w = run(&mut node(2), T0, EPOCH_SEC, &mut rng);
    let d = StatDelta::decode(&w[0]).unwrap();
    // Another node's clock is far ahead.
    assert!(matches!(
        t.apply_delta(&d, T0 + 100 * EPOCH_SEC),
        Err(ApplyError::EpochTooOld { .. })
    ));
}
