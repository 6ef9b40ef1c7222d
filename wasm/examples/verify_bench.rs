//! Native twin of the page benchmark: parse and audit a 10,000-link chain
//! through the same `Verifier` export; prints the fastest of 15 runs in
//! milliseconds (the minimum is the least disturbed by a loaded machine).

use moss_wasm::synthetic::synthetic_chain_json;
use moss_wasm::Verifier;
use std::time::Instant;

fn main() {
    let json = synthetic_chain_json(10_000, 7);
    let mut v = Verifier::new(1);
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t0 = Instant::now();
            let r = v.set_chain(0, json.as_bytes());
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            assert!(
                r.contains("\"verified_through\":10000"),
                "bench chain did not verify"
            );
            ms
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.3}", times[0]);
}
