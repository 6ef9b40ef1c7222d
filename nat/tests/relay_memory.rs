//! Memory per relay session, measured with a counting allocator (this test
//! binary holds only this test, so nothing else allocates meanwhile).

use std::time::Duration;

use moss_nat::relay::{RelayConfig, RelayTable, PEER_SLOT_BYTES, SESSION_SLOT_BYTES};

#[path = "support/counting.rs"]
mod counting;

fn key(n: u32, side: u8) -> [u8; 32] {
    let mut k = [side; 32];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k
}

/// Bytes per session of a full table of `n` sessions between distinct peers.
fn per_session(n: u32) -> f64 {
    let t0 = Duration::ZERO;
    let before = counting::live();
    let mut t = RelayTable::new(RelayConfig {
        max_sessions: n as usize,
        ..RelayConfig::default()
    });
    for i in 0..n {
        t.open(t0, key(i, 1), key(i, 2)).unwrap();
    }
    let bytes = counting::live() - before;
    assert_eq!(t.len(), n as usize);
    bytes as f64 / f64::from(n)
}

#[test]
fn a_relay_session_costs_at_most_256_bytes() {
    println!("session slot {SESSION_SLOT_BYTES} B, peer slot {PEER_SLOT_BYTES} B");
    for n in [50, 10_000] {
        let b = per_session(n);
        println!("{n} sessions: {b:.0} B per session (two distinct peers each)");
        assert!(b <= 256.0, "{b} B per session at {n} sessions");
    }
}
