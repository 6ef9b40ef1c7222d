//! The `telemetry` block of the node's JSON config.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest accepted `epoch_sec` (it travels as a u32 in every [`crate::StatDelta`]).
pub const MAX_EPOCH_SEC: u64 = u32::MAX as u64;
/// Largest accepted `bandwidth_cap_bytes`: 1 TiB per node per epoch.
pub const MAX_BANDWIDTH_CAP: u64 = 1 << 40;
/// Largest accepted `degree_cap` (degrees travel as u16).
pub const MAX_DEGREE_CAP: u32 = u16::MAX as u32;

/// Telemetry settings. Every field has a default, so a partial JSON object
/// falls back to the defaults field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// Opt-in switch; telemetry is off unless a host turns it on.
    pub enabled: bool,
    /// Epoch length in seconds (default 300).
    pub epoch_sec: u64,
    /// Local differential-privacy epsilon for bandwidth (default 1.0);
    /// `<= 0` disables the noise.
    pub dp_epsilon: f64,
    /// Per-node, per-epoch bandwidth clamp in bytes (default 1 GiB); also the
    /// DP sensitivity of each bandwidth figure.
    pub bandwidth_cap_bytes: u64,
    /// Per-node degree clamp (default 256).
    pub degree_cap: u32,
    /// Detailed metrics stay hidden until this many contributors (default 5).
    pub k_anon: u32,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            epoch_sec: 300,
            dp_epsilon: 1.0,
            bandwidth_cap_bytes: 1 << 30,
            degree_cap: 256,
            k_anon: 5,
        }
    }
}

/// A config value that cannot be used; each variant names its field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// `epoch_sec` is zero or does not fit the wire's u32.
    #[error("telemetry.epoch_sec must be between 1 and {max}, got {got}")]
    EpochSec {
        /// The rejected value.
        got: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// `dp_epsilon` is NaN or infinite.
    #[error("telemetry.dp_epsilon must be a finite number, got {0}")]
    DpEpsilon(f64),
    /// `bandwidth_cap_bytes` is zero or above 1 TiB.
    #[error("telemetry.bandwidth_cap_bytes must be between 1 and {max}, got {got}")]
    BandwidthCap {
        /// The rejected value.
        got: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// `degree_cap` is zero or above 65535.
    #[error("telemetry.degree_cap must be between 1 and {max}, got {got}")]
    DegreeCap {
        /// The rejected value.
        got: u32,
        /// The largest accepted value.
        max: u32,
    },
    /// `k_anon` is zero.
    #[error("telemetry.k_anon must be at least 1, got 0")]
    KAnon,
}

impl ConfigError {
    /// The JSON field name the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::EpochSec { .. } => "epoch_sec",
            ConfigError::DpEpsilon(_) => "dp_epsilon",
            ConfigError::BandwidthCap { .. } => "bandwidth_cap_bytes",
            ConfigError::DegreeCap { .. } => "degree_cap",
            ConfigError::KAnon => "k_anon",
        }
    }
}

impl TelemetryConfig {
    /// Checks every field; the first bad one is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.epoch_sec == 0 || self.epoch_sec > MAX_EPOCH_SEC {
            return Err(ConfigError::EpochSec {
                got: self.epoch_sec,
                max: MAX_EPOCH_SEC,
            });
        }
        if !self.dp_epsilon.is_finite() {
            return Err(ConfigError::DpEpsilon(self.dp_epsilon));
        }
        if self.bandwidth_cap_bytes == 0 || self.bandwidth_cap_bytes > MAX_BANDWIDTH_CAP {
            return Err(ConfigError::BandwidthCap {
                got: self.bandwidth_cap_bytes,
                max: MAX_BANDWIDTH_CAP,
            });
        }
        if self.degree_cap == 0 || self.degree_cap > MAX_DEGREE_CAP {
            return Err(ConfigError::DegreeCap {
                got: self.degree_cap,
                max: MAX_DEGREE_CAP,
            });
        }
        if self.k_anon == 0 {
            return Err(ConfigError::KAnon);
        }
        Ok(())
    }

    /// Whether local DP noise is applied (`dp_epsilon > 0`).
    pub fn noise_enabled(&self) -> bool {
        self.dp_epsilon > 0.0
    }

    /// Seconds between re-gossips of the node's own contribution within an
    /// epoch: a quarter epoch, at least 5 s (the original's cadence).
    pub fn gossip_interval_sec(&self) -> u64 {
        (self.epoch_sec / 4).max(5)
    }

    /// The epoch containing unix time `unix_secs`.
    pub fn epoch_at(&self, unix_secs: u64) -> u64 {
        unix_secs.checked_div(self.epoch_sec).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_reference() {
        let c = TelemetryConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.epoch_sec, 300);
        assert_eq!(c.dp_epsilon, 1.0);
        assert_eq!(c.bandwidth_cap_bytes, 1 << 30);
        assert_eq!(c.degree_cap, 256);
        assert_eq!(c.k_anon, 5);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn partial_json_falls_back_field_by_field() {
        let c: TelemetryConfig = serde_json::from_str(r#"{"enabled":true,"k_anon":3}"#).unwrap();
        assert!(c.enabled);
        assert_eq!(c.k_anon, 3);
        assert_eq!(c.epoch_sec, 300);
        assert_eq!(c.dp_epsilon, 1.0);
        let empty: TelemetryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, TelemetryConfig::default());
    }

    #[test]
    fn json_round_trips_with_reference_field_names() {
        let v = serde_json::to_value(TelemetryConfig::default()).unwrap();
        for key in [
            "enabled",
            "epoch_sec",
            "dp_epsilon",
            "bandwidth_cap_bytes",
            "degree_cap",
            "k_anon",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        let back: TelemetryConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, TelemetryConfig::default());
    }

    #[test]
    fn validate_names_the_bad_field() {
        let base = TelemetryConfig::default();
        let cases: Vec<(TelemetryConfig, &str)> = vec![
            (
                TelemetryConfig {
                    epoch_sec: 0,
                    ..base.clone()
                },
                "epoch_sec",
            ),
            (
                TelemetryConfig {
                    epoch_sec: MAX_EPOCH_SEC + 1,
                    ..base.clone()
                },
                "epoch_sec",
            ),
            (
                TelemetryConfig {
                    dp_epsilon: f64::NAN,
                    ..base.clone()
                },
                "dp_epsilon",
            ),
            (
                TelemetryConfig {
                    bandwidth_cap_bytes: 0,
                    ..base.clone()
                },
                "bandwidth_cap_bytes",
            ),
            (
                TelemetryConfig {
                    degree_cap: 70_000,
                    ..base.clone()
                },
                "degree_cap",
            ),
            (
                TelemetryConfig {
                    k_anon: 0,
                    ..base.clone()
                },
                "k_anon",
            ),
        ];
        for (cfg, field) in cases {
            let err = cfg.validate().unwrap_err();
            assert_eq!(err.field(), field);
            assert!(err.to_string().contains(field), "{err}");
        }
        let no_noise = TelemetryConfig {
            dp_epsilon: -1.0,
            ..base
        };
        assert_eq!(no_noise.validate(), Ok(()));
        assert!(!no_noise.noise_enabled());
    }

    #[test]
    fn gossip_interval_and_epochs() {
        let c = TelemetryConfig::default();
        assert_eq!(c.gossip_interval_sec(), 75);
        assert_eq!(c.epoch_at(599), 1);
        assert_eq!(c.epoch_at(600), 2);
        let short = TelemetryConfig { epoch_sec: 8, ..c };
        assert_eq!(short.gossip_interval_sec(), 5);
    }
}
