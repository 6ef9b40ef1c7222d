//! Well-formed chains built by the nodes' own [`moss_telemetry::Chain`],
//! for the verifier's benchmark and tests.

use moss_telemetry::{Chain, Digest};
use wasm_bindgen::prelude::*;

/// The `/api/chain` JSON of an `n`-link chain from epoch 1, with state
/// commitments derived from `seed` and the epoch.
#[wasm_bindgen(js_name = syntheticChainJson)]
pub fn synthetic_chain_json(n: u32, seed: u8) -> String {
    let mut chain = Chain::new(n as usize);
    for e in 1..=u64::from(n) {
        let mut state = [seed; 32];
        state[..8].copy_from_slice(&e.to_be_bytes());
        // Epochs strictly increase, so appending cannot fail.
        let _ = chain.append(e, Digest(state));
    }
    serde_json::to_string(&chain).unwrap_or_else(|_| "[]".into())
}
