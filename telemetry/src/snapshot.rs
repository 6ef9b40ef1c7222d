//! The k-anonymous epoch report served as `/api/stats` and returned by
//! `Moss_GetNetworkStats`.

use crate::chain::{epoch_digest, Digest};
use crate::crdt::EpochState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The degree histogram bucket of a (clamped) degree: `0`, `1-2`, `3-5`,
/// `6-10`, `11-20`, `21+`.
pub fn degree_bucket(degree: u16) -> &'static str {
    match degree {
        0 => "0",
        1..=2 => "1-2",
        3..=5 => "3-5",
        6..=10 => "6-10",
        11..=20 => "11-20",
        _ => "21+",
    }
}

/// The report for one epoch. Detailed metrics (bandwidth totals and both
/// histograms) are present only when `k_anon_ok`; below the threshold they
/// are omitted from the JSON entirely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The epoch number.
    pub epoch: u64,
    /// HyperLogLog estimate of the number of nodes.
    pub node_count_estimate: u64,
    /// Distinct contributions merged for the epoch.
    pub contributors: u64,
    /// Whether `contributors >= k_anon`.
    pub k_anon_ok: bool,
    /// Sum of the DP-noised inbound bandwidth (bytes), when `k_anon_ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_in_total: Option<u64>,
    /// Sum of the DP-noised outbound bandwidth (bytes), when `k_anon_ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_out_total: Option<u64>,
    /// Contributors per NAT class (only classes seen), when `k_anon_ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_histogram: Option<BTreeMap<String, u64>>,
    /// Contributors per degree bucket (only buckets seen), when `k_anon_ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degree_histogram: Option<BTreeMap<String, u64>>,
    /// `BLAKE2s(epoch ‖ state_digest ‖ prev_digest)` over the state as
    /// merged so far (it changes while the epoch is open).
    pub epoch_digest: Digest,
    /// Digest of the node's latest finalized epoch (zero if none).
    pub prev_digest: Digest,
    /// Epoch number of the node's latest finalized epoch (0 if none).
    pub chain_head: u64,
}

impl EpochReport {
    /// Builds the report for `state`, chained to `prev` (the digest of the
    /// latest finalized epoch) with `chain_head` its epoch number.
    pub fn from_state(state: &EpochState, k_anon: u32, prev: Digest, chain_head: u64) -> Self {
        let contributors = state.contributors() as u64;
        let k_anon_ok = contributors >= u64::from(k_anon);
        let mut report = Self {
            epoch: state.epoch(),
            node_count_estimate: state.node_count_estimate(),
            contributors,
            k_anon_ok,
            bandwidth_in_total: None,
            bandwidth_out_total: None,
            nat_histogram: None,
            degree_histogram: None,
            epoch_digest: epoch_digest(state.epoch(), &state.state_digest(), &prev),
            prev_digest: prev,
            chain_head,
        };
        if k_anon_ok {
            let mut bw_in = 0u64;
            let mut bw_out = 0u64;
            let mut nat: BTreeMap<String, u64> = BTreeMap::new();
            let mut degree: BTreeMap<String, u64> = BTreeMap::new();
            for (_, c) in state.entries() {
                bw_in = bw_in.saturating_add(c.bandwidth_in);
                bw_out = bw_out.saturating_add(c.bandwidth_out);
                *nat.entry(c.nat.as_str().to_owned()).or_default() += 1;
                *degree
                    .entry(degree_bucket(c.degree).to_owned())
                    .or_default() += 1;
            }
            report.bandwidth_in_total = Some(bw_in);
            report.bandwidth_out_total = Some(bw_out);
            report.nat_histogram = Some(nat);
            report.degree_histogram = Some(degree);
        }
        report
    }
}

/// What `/api/stats` serves: the current epoch's report, or `{}` when
/// telemetry is disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Snapshot {
    /// Telemetry on: the current epoch's report.
    Report(EpochReport),
    /// Telemetry off: serializes as `{}`.
    Disabled(Disabled),
}

/// The empty JSON object of a disabled node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disabled {}

impl Snapshot {
    /// The report, when telemetry is on.
    pub fn report(&self) -> Option<&EpochReport> {
        match self {
            Snapshot::Report(r) => Some(r),
            Snapshot::Disabled(_) => None,
        }
    }

    /// The JSON text served by the gateway.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to `{}`.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contribution::Contribution;
    use crate::nat::NatType;

    fn state_with(n: u8) -> EpochState {
        let mut s = EpochState::new(3);
        for i in 0..n {
            s.insert(
                crate::eid::eid(3, &[i; 32]),
                Contribution {
                    version: 1,
                    bandwidth_in: 100,
                    bandwidth_out: 10,
                    degree: u16::from(i) * 4,
                    nat: if i % 2 == 0 {
                        NatType::Public
                    } else {
                        NatType::Cgnat
                    },
                },
            );
        }
        s
    }

    #[test]
    fn buckets() {
        let cases = [
            (0, "0"),
            (1, "1-2"),
            (2, "1-2"),
            (3, "3-5"),
            (5, "3-5"),
            (6, "6-10"),
            (10, "6-10"),
            (11, "11-20"),
            (20, "11-20"),
            (21, "21+"),
            (256, "21+"),
        ];
        for (d, b) in cases {
            assert_eq!(degree_bucket(d), b, "{d}");
        }
    }

    #[test]
    fn k_anon_hides_details_below_threshold() {
        let r = EpochReport::from_state(&state_with(4), 5, Digest::ZERO, 0);
        assert!(!r.k_anon_ok);
        assert_eq!(r.contributors, 4);
        assert_eq!(r.node_count_estimate, 4);
        let v = serde_json::to_value(&r).unwrap();
        let obj = v.as_object().unwrap();
        for hidden in [
            "bandwidth_in_total",
            "bandwidth_out_total",
            "nat_histogram",
            "degree_histogram",
        ] {
            assert!(!obj.contains_key(hidden), "{hidden} leaked");
        }
        for shown in [
            "epoch",
            "node_count_estimate",
            "contributors",
            "k_anon_ok",
            "epoch_digest",
            "prev_digest",
            "chain_head",
        ] {
            assert!(obj.contains_key(shown), "{shown} missing");
        }
    }

    #[test]
    fn details_appear_at_threshold() {
        let r = EpochReport::from_state(&state_with(5), 5, Digest::ZERO, 2);
        assert!(r.k_anon_ok);
        assert_eq!(r.bandwidth_in_total, Some(500));
        assert_eq!(r.bandwidth_out_total, Some(50));
        let nat = r.nat_histogram.clone().unwrap();
        assert_eq!(nat.get("public"), Some(&3));
        assert_eq!(nat.get("cgnat"), Some(&2));
        let deg = r.degree_histogram.clone().unwrap();
        // degrees 0, 4, 8, 12, 16
        assert_eq!(deg.get("0"), Some(&1));
        assert_eq!(deg.get("3-5"), Some(&1));
        assert_eq!(deg.get("6-10"), Some(&1));
        assert_eq!(deg.get("11-20"), Some(&2));
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""nat_histogram":{"cgnat":2,"public":3}"#),
            "{json}"
        );
        assert!(json.contains(r#""chain_head":2"#));
        let back: EpochReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn digest_binds_state_and_prev() {
        let a = EpochReport::from_state(&state_with(5), 5, Digest::ZERO, 0);
        let b = EpochReport::from_state(&state_with(6), 5, Digest::ZERO, 0);
        let c = EpochReport::from_state(&state_with(5), 5, Digest([1; 32]), 0);
        assert_ne!(a.epoch_digest, b.epoch_digest);
        assert_ne!(a.epoch_digest, c.epoch_digest);
        assert_eq!(
            a.epoch_digest,
            EpochReport::from_state(&state_with(5), 1, Digest::ZERO, 9).epoch_digest
        );
    }

    #[test]
    fn disabled_serializes_as_empty_object() {
        let s = Snapshot::Disabled(Disabled {});
        assert_eq!(s.to_json(), "{}");
        assert_eq!(serde_json::from_str::<Snapshot>("{}").unwrap(), s);
        let r = Snapshot::Report(EpochReport::from_state(&state_with(1), 5, Digest::ZERO, 0));
        let back: Snapshot = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert!(back.report().is_some());
    }
}
