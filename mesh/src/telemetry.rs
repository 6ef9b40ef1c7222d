//! Telemetry inside the node: local counters feed a [`moss_telemetry::Telemetry`],
//! its deltas travel as messages on an internal topic, and deltas received
//! there are merged (or rejected and counted) when they arrive, instead of
//! reaching the application.

use crate::node::Node;
use crate::stats::DropReason;
use blake2::{Blake2s256, Digest};
use moss_crypto::Identity;
use moss_telemetry::{ChainLink, Snapshot, StatDelta, Telemetry, TelemetryConfig};

/// The internal topic that carries stat deltas.
pub const TELEMETRY_TOPIC: &str = "moss/telemetry/v1";

/// The 32 bytes that take the public key's place in
/// `eid = BLAKE2s(epoch ‖ key)`: a per-node secret derived from the identity
/// seed, so a peer that knows our public key still cannot pick our
/// contribution out of a snapshot.
pub(crate) fn eid_key(identity: &Identity) -> [u8; 32] {
    let mut h = Blake2s256::new();
    h.update(b"moss/telemetry-eid/v1");
    h.update(identity.seed());
    h.finalize().into()
}

/// The node's telemetry state: the CRDT, the byte counters it has seen,
/// and the wall clock at the node's time origin.
pub(crate) struct NodeTelemetry {
    pub t: Telemetry,
    bytes_seen: (u64, u64),
    unix_origin: u64,
}

impl NodeTelemetry {
    /// Telemetry per the config block.
    pub fn new(cfg: &TelemetryConfig, identity: &Identity) -> Self {
        Self {
            t: build(cfg, identity),
            bytes_seen: (0, 0),
            unix_origin: 0,
        }
    }

    /// True when telemetry is on.
    pub fn is_enabled(&self) -> bool {
        self.t.is_enabled()
    }
}

/// Builds the node's telemetry; an invalid block (only possible for a config
/// built in code without `validate`) leaves telemetry off.
fn build(cfg: &TelemetryConfig, identity: &Identity) -> Telemetry {
    Telemetry::new(cfg.clone(), eid_key(identity)).unwrap_or_else(|_| {
        let off = TelemetryConfig {
            enabled: false,
            ..TelemetryConfig::default()
        };
        // The default config always validates.
        match Telemetry::new(off, eid_key(identity)) {
            Ok(t) => t,
            Err(_) => unreachable!("default telemetry config is valid"),
        }
    })
}

impl Node {
    /// Seconds since the Unix epoch at this node's time origin; telemetry
    /// epochs are wall-clock based so that every node agrees on them.
    pub fn set_unix_origin(&mut self, unix_secs_at_origin: u64) {
        self.telemetry.unix_origin = unix_secs_at_origin;
    }

    pub(crate) fn unix_now(&self) -> u64 {
        self.telemetry
            .unix_origin
            .saturating_add(self.now.as_secs())
    }

    /// The telemetry snapshot (`Moss_GetNetworkStats`; `{}` when off).
    pub fn network_stats(&self) -> Snapshot {
        self.telemetry.t.snapshot()
    }

    /// The newest `limit` links of the telemetry hash chain, oldest first.
    pub fn telemetry_chain(&self, limit: usize) -> Vec<ChainLink> {
        self.telemetry.t.chain().recent(limit)
    }

    /// True when telemetry is on.
    pub fn telemetry_enabled(&self) -> bool {
        self.telemetry.is_enabled()
    }

    /// Feeds counters and publishes our delta when one is due.
    pub(crate) fn telemetry_tick(&mut self) {
        if !self.telemetry.is_enabled() {
            return;
        }
        let (bin, bout) = (self.stats.bytes_in, self.stats.bytes_out);
        let (lin, lout) = self.telemetry.bytes_seen;
        self.telemetry
            .t
            .record_bandwidth(bin.saturating_sub(lin), bout.saturating_sub(lout));
        self.telemetry.bytes_seen = (bin, bout);
        let degree = self.peer_count() as u32;
        self.telemetry.t.set_degree(degree);
        let unix = self.unix_now();
        if let Some(delta) = self.telemetry.t.tick(unix, &mut self.rng) {
            let now = self.now;
            // No subscribed peer yet is normal for a lone node.
            let _ = self.publish(now, TELEMETRY_TOPIC, &delta.encode());
        }
    }

    /// Merges a delta received on the telemetry topic (already checked
    /// to decode before it was forwarded).
    pub(crate) fn merge_delta(&mut self, payload: &[u8]) {
        if !self.telemetry.is_enabled() {
            return;
        }
        match StatDelta::decode(payload) {
            Ok(delta) => {
                let unix = self.unix_now();
                if self.telemetry.t.apply_delta(&delta, unix).is_err() {
                    self.drop_input(DropReason::StatDeltaRejected);
                }
            }
            Err(_) => self.drop_input(DropReason::BadStatDelta),
        }
    }
}
