//! One node's per-epoch contribution and its last-writer-wins order.

use crate::config::TelemetryConfig;
use crate::dp::{clamp, noisy_bandwidth, MAX_REPORTED_BANDWIDTH};
use crate::nat::NatType;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use thiserror::Error;

/// Length of [`Contribution::canonical_bytes`].
pub const CONTRIBUTION_LEN: usize = 27;

/// A contribution value that no honest node produces.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContributionError {
    /// `bandwidth_in` is above 2^53.
    #[error("bandwidth_in {0} above the maximum of 2^53")]
    BandwidthIn(u64),
    /// `bandwidth_out` is above 2^53.
    #[error("bandwidth_out {0} above the maximum of 2^53")]
    BandwidthOut(u64),
    /// The NAT byte is not a known class.
    #[error("unknown NAT code {0}")]
    NatCode(u8),
}

/// A node's raw, un-noised metrics for one epoch, as measured locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalMetrics {
    /// Bytes received.
    pub bandwidth_in: u64,
    /// Bytes sent.
    pub bandwidth_out: u64,
    /// Number of connected peers.
    pub degree: u32,
    /// The node's NAT class.
    pub nat: NatType,
}

/// What one node publishes for one epoch: bandwidth clamped and DP-noised,
/// degree clamped, NAT class, and a version for last-writer-wins updates.
///
/// The total order used by the CRDT is the lexicographic order of
/// [`Contribution::canonical_bytes`]: higher version wins, ties are broken
/// by the remaining bytes, so every node picks the same winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Contribution {
    /// Lamport version; a node bumps it to replace its own entry.
    pub version: u64,
    /// Noised bytes received.
    pub bandwidth_in: u64,
    /// Noised bytes sent.
    pub bandwidth_out: u64,
    /// Clamped peer count.
    pub degree: u16,
    /// NAT class.
    pub nat: NatType,
}

impl Contribution {
    /// Builds the node's own contribution: bandwidth clamped to
    /// `bandwidth_cap_bytes` and noised with Laplace(cap/`dp_epsilon`) from
    /// `rng`; degree clamped to `degree_cap` (not noised: it is only ever
    /// published bucketed, behind the k-anonymity gate).
    pub fn from_local<R: RngCore + ?Sized>(
        metrics: &LocalMetrics,
        config: &TelemetryConfig,
        version: u64,
        rng: &mut R,
    ) -> Self {
        let cap = config.bandwidth_cap_bytes;
        let eps = config.dp_epsilon;
        Self {
            version,
            bandwidth_in: noisy_bandwidth(rng, metrics.bandwidth_in, cap, eps),
            bandwidth_out: noisy_bandwidth(rng, metrics.bandwidth_out, cap, eps),
            degree: clamp_degree(metrics.degree, config.degree_cap),
            nat: metrics.nat,
        }
    }

    /// The fixed 27-byte encoding used on the wire, in digests and for the
    /// LWW order: version u64 ‖ bandwidth_in u64 ‖ bandwidth_out u64 ‖
    /// degree u16 ‖ nat u8, integers big-endian.
    pub fn canonical_bytes(&self) -> [u8; CONTRIBUTION_LEN] {
        let mut out = [0u8; CONTRIBUTION_LEN];
        let (v, rest) = out.split_at_mut(8);
        v.copy_from_slice(&self.version.to_be_bytes());
        let (bi, rest) = rest.split_at_mut(8);
        bi.copy_from_slice(&self.bandwidth_in.to_be_bytes());
        let (bo, rest) = rest.split_at_mut(8);
        bo.copy_from_slice(&self.bandwidth_out.to_be_bytes());
        let (d, n) = rest.split_at_mut(2);
        d.copy_from_slice(&self.degree.to_be_bytes());
        if let Some(b) = n.first_mut() {
            *b = self.nat.code();
        }
        out
    }

    /// Parses [`Contribution::canonical_bytes`], rejecting unknown NAT codes
    /// and bandwidth above 2^53.
    pub fn from_canonical_bytes(b: &[u8; CONTRIBUTION_LEN]) -> Result<Self, ContributionError> {
        let [v0, v1, v2, v3, v4, v5, v6, v7, i0, i1, i2, i3, i4, i5, i6, i7, o0, o1, o2, o3, o4, o5, o6, o7, d0, d1, nat] =
            *b;
        let c = Self {
            version: u64::from_be_bytes([v0, v1, v2, v3, v4, v5, v6, v7]),
            bandwidth_in: u64::from_be_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
            bandwidth_out: u64::from_be_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
            degree: u16::from_be_bytes([d0, d1]),
            nat: NatType::from_code(nat).ok_or(ContributionError::NatCode(nat))?,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the value bounds every decoder enforces.
    pub fn validate(&self) -> Result<(), ContributionError> {
        if self.bandwidth_in > MAX_REPORTED_BANDWIDTH {
            return Err(ContributionError::BandwidthIn(self.bandwidth_in));
        }
        if self.bandwidth_out > MAX_REPORTED_BANDWIDTH {
            return Err(ContributionError::BandwidthOut(self.bandwidth_out));
        }
        Ok(())
    }

    /// The LWW join: the greater of the two under the canonical order.
    pub fn lww_max(self, other: Self) -> Self {
        if other > self {
            other
        } else {
            self
        }
    }
}

impl Ord for Contribution {
    fn cmp(&self, other: &Self) -> Ordering {
        self.canonical_bytes().cmp(&other.canonical_bytes())
    }
}

impl PartialOrd for Contribution {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `degree` clamped to `cap` and to the u16 wire range.
pub fn clamp_degree(degree: u32, cap: u32) -> u16 {
    u16::try_from(clamp(u64::from(degree), u64::from(cap))).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn c(version: u64, bw: u64) -> Contribution {
        Contribution {
            version,
            bandwidth_in: bw,
            bandwidth_out: 0,
            degree: 1,
            nat: NatType::Public,
        }
    }

    #[test]
    fn higher_version_wins_then_bytes_break_ties() {
        assert_eq!(c(2, 1).lww_max(c(1, 999)), c(2, 1));
        assert_eq!(c(1, 999).lww_max(c(2, 1)), c(2, 1));
        assert_eq!(c(1, 5).lww_max(c(1, 7)), c(1, 7));
        assert_eq!(c(1, 7).lww_max(c(1, 5)), c(1, 7));
        assert_eq!(c(1, 7).lww_max(c(1, 7)), c(1, 7));
    }

    #[test]
    fn canonical_bytes_round_trip_and_layout() {
        let x = Contribution {
            version: 0x0102030405060708,
            bandwidth_in: 9,
            bandwidth_out: 10,
            degree: 0x0b0c,
            nat: NatType::Cgnat,
        };
        let b = x.canonical_bytes();
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b[15], 9);
        assert_eq!(b[23], 10);
        assert_eq!(&b[24..26], &[0x0b, 0x0c]);
        assert_eq!(b[26], 6);
        assert_eq!(Contribution::from_canonical_bytes(&b), Ok(x));
        let mut bad = b;
        bad[26] = 7;
        assert_eq!(
            Contribution::from_canonical_bytes(&bad),
            Err(ContributionError::NatCode(7))
        );
        let mut big = b;
        big[8] = 0xff;
        assert!(matches!(
            Contribution::from_canonical_bytes(&big),
            Err(ContributionError::BandwidthIn(_))
        ));
    }

    #[test]
    fn from_local_clamps_and_noises() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let cfg = TelemetryConfig {
            dp_epsilon: -1.0,
            bandwidth_cap_bytes: 1000,
            degree_cap: 10,
            ..TelemetryConfig::default()
        };
        let m = LocalMetrics {
            bandwidth_in: 5000,
            bandwidth_out: 10,
            degree: 300,
            nat: NatType::SymmetricNat,
        };
        let x = Contribution::from_local(&m, &cfg, 3, &mut rng);
        assert_eq!(
            x,
            Contribution {
                version: 3,
                bandwidth_in: 1000,
                bandwidth_out: 10,
                degree: 10,
                nat: NatType::SymmetricNat
            }
        );
        let noisy_cfg = TelemetryConfig {
            dp_epsilon: 1.0,
            ..cfg
        };
        let draws: Vec<u64> = (0..20)
            .map(|_| Contribution::from_local(&m, &noisy_cfg, 1, &mut rng).bandwidth_out)
            .collect();
        assert!(draws.iter().any(|&v| v != 10), "{draws:?}");
        assert_eq!(clamp_degree(u32::MAX, u32::MAX), u16::MAX);
    }
}
