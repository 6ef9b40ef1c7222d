//! The explorer's verifier: one slot per gateway holding its parsed chain,
//! audited on arrival, and the agreement across slots.

use crate::reply;
use moss_telemetry::{agreement, audit, check_snapshot, parse_chain, parse_stats, ChainLink};
use serde_json::json;
use wasm_bindgen::prelude::*;

/// Parsed chains of the gateways the page reads, one slot each.
#[wasm_bindgen]
#[derive(Debug, Default)]
pub struct Verifier {
    chains: Vec<Vec<ChainLink>>,
}

#[wasm_bindgen]
impl Verifier {
    /// A verifier with `slots` empty gateway slots (at most 64).
    #[wasm_bindgen(constructor)]
    pub fn new(slots: usize) -> Verifier {
        Verifier {
            chains: vec![Vec::new(); slots.min(64)],
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.chains.len()
    }

    /// Parses and audits an `/api/chain` body for `slot`. On success the
    /// chain replaces the slot's previous one and the answer carries
    /// `audit` (every break: epoch, expected vs got); bad input empties the
    /// slot and answers the error.
    #[wasm_bindgen(js_name = setChain)]
    pub fn set_chain(&mut self, slot: usize, body: &[u8]) -> String {
        let Some(held) = self.chains.get_mut(slot) else {
            return reply::usage(format!("no gateway slot {slot}"));
        };
        match parse_chain(body) {
            Ok(links) => {
                let a = audit(&links);
                *held = links;
                reply::ok(json!({ "audit": a }))
            }
            Err(e) => {
                held.clear();
                reply::input_error(&e)
            }
        }
    }

    /// Forgets the chain of `slot` (the gateway is down or serves another
    /// mesh), so it takes no part in the agreement.
    #[wasm_bindgen(js_name = clearChain)]
    pub fn clear_chain(&mut self, slot: usize) {
        if let Some(held) = self.chains.get_mut(slot) {
            held.clear();
        }
    }

    /// Parses an `/api/stats` body and checks its snapshot against the
    /// chain held for `slot`: answers `stats` (`report`, `mesh_id`) and
    /// `issues`.
    #[wasm_bindgen(js_name = checkStats)]
    pub fn check_stats(&self, slot: usize, body: &[u8]) -> String {
        let Some(chain) = self.chains.get(slot) else {
            return reply::usage(format!("no gateway slot {slot}"));
        };
        match parse_stats(body) {
            Ok(doc) => {
                let issues: Vec<_> = doc
                    .report
                    .as_ref()
                    .map(|r| check_snapshot(r, chain))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| json!({ "detail": i, "message": i.to_string() }))
                    .collect();
                reply::ok(json!({ "stats": doc, "issues": issues }))
            }
            Err(e) => reply::input_error(&e),
        }
    }

    /// The agreement of every slot's chain, epoch by epoch, and the epochs
    /// at which each slot dissents.
    pub fn agreement(&self) -> String {
        let chains: Vec<&[ChainLink]> = self.chains.iter().map(Vec::as_slice).collect();
        reply::ok(json!({ "agreement": agreement(&chains) }))
    }
}
