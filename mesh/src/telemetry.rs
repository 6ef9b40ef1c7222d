//! Telemetry inside the node: local counters feed a [`moss_telemetry::Telemetry`],
//! its deltas travel as messages on an internal topic, and deltas received
//! there are merged (or rejected and counted) instead of reaching the
//! application.

use crate::event::Message;
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

/// Builds the node's telemetry; an invalid block (only possible for a config
/// built in code without `validate`) leaves telemetry off.
pub(crate) fn build(cfg: &TelemetryConfig, identity: &Identity) -> Telemetry {
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
        self.unix_origin = unix_secs_at_origin;
    }

    pub(crate) fn unix_now(&self) -> u64 {
        self.unix_origin.saturating_add(self.now.as_secs())
    }

    /// The telemetry snapshot (`Moss_GetNetworkStats`; `{}` when off).
    pub fn network_stats(&self) -> Snapshot {
        self.telemetry.snapshot()
    }

    /// The newest `limit` links of the telemetry hash chain, oldest first.
    pub fn telemetry_chain(&self, limit: usize) -> Vec<ChainLink> {
        self.telemetry.chain().recent(limit)
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
        let (lin, lout) = self.telemetry_bytes_seen;
        self.telemetry
            .record_bandwidth(bin.saturating_sub(lin), bout.saturating_sub(lout));
        self.telemetry_bytes_seen = (bin, bout);
        self.telemetry.set_degree(self.peer_count() as u32);
        let unix = self.unix_now();
        if let Some(delta) = self.telemetry.tick(unix, &mut self.rng) {
            let now = self.now;
            // No subscribed peer yet is normal for a lone node.
            let _ = self.publish(now, TELEMETRY_TOPIC, &delta.encode());
        }
    }

    /// Consumes telemetry messages; returns true when `m` was one.
    pub(crate) fn telemetry_intercept(&mut self, m: &Message) -> bool {
        if &*m.topic != TELEMETRY_TOPIC {
            return false;
        }
        if !self.telemetry.is_enabled() {
            return true;
        }
        match StatDelta::decode(&m.data) {
            Ok(delta) => {
                let unix = self.unix_now();
                if self.telemetry.apply_delta(&delta, unix).is_err() {
                    self.drop_input(DropReason::StatDeltaRejected);
                }
            }
            Err(_) => self.drop_input(DropReason::BadStatDelta),
        }
        true
    }
}
