//! Memory per relay session and forwarding decisions per second at 10,000
//! sessions (`relay_max_sessions` raised), measured with a counting allocator.
//!
//! `cargo run --release -p moss-nat --example relay_memory [SESSIONS]`

use std::time::Instant;

use moss_nat::relay::{RelayConfig, RelayTable};

#[path = "../tests/support/counting.rs"]
mod counting;

fn key(n: u32, side: u8) -> [u8; 32] {
    let mut k = [side; 32];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let t0 = std::time::Duration::ZERO;
    let cfg = RelayConfig {
        max_sessions: n as usize,
        max_bandwidth_kbps: u32::MAX / 1000,
        ..RelayConfig::default()
    };
    let mut idx = Vec::with_capacity(n as usize);
    let before = counting::live();
    let mut t = RelayTable::new(cfg);
    for i in 0..n {
        idx.push(
            t.open(t0, key(i, 1), key(i, 2))
                .expect("capacity was raised to n"),
        );
    }
    let table = counting::live() - before;
    println!(
        "{n} sessions (2 distinct peers each): {table} B in the table = {:.0} B per session",
        table as f64 / f64::from(n)
    );
    let rounds = 20u32;
    let start = Instant::now();
    let mut ok = 0u64;
    for r in 0..rounds {
        for (i, s) in idx.iter().enumerate() {
            if t.forward(t0, *s, &key(i as u32, 1 + (r % 2) as u8), 64)
                .is_ok()
            {
                ok += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "forward decisions: {:.2} M/s ({ok} forwarded of {} over {n} sessions)",
        f64::from(rounds * n) / secs / 1e6,
        rounds * n
    );
}
