//! Router parameters with the defaults of the reference, built through a
//! validating builder.

use crate::score::{ScoreParams, Thresholds};
use std::time::Duration;

/// A parameter combination the router cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Mesh degrees must satisfy `D_lo <= D <= D_high`.
    #[error("need D_lo ({d_lo}) <= D ({d}) <= D_high ({d_high})")]
    Degrees {
        /// D_lo.
        d_lo: usize,
        /// D.
        d: usize,
        /// D_high.
        d_high: usize,
    },
    /// `D_out` must be below `D_lo` and at most `D / 2`.
    #[error("D_out ({d_out}) must be below D_lo and at most D/2")]
    DOut {
        /// D_out.
        d_out: usize,
    },
    /// `D_score` must not exceed `D`.
    #[error("D_score ({0}) must not exceed D")]
    DScore(usize),
    /// The heartbeat must be positive.
    #[error("heartbeat must be positive")]
    Heartbeat,
    /// Gossip windows must fit in the message cache history.
    #[error("mcache_gossip ({gossip}) must be between 1 and mcache_len ({len})")]
    Mcache {
        /// Windows gossiped.
        gossip: usize,
        /// Windows kept.
        len: usize,
    },
    /// Score thresholds must be ordered graylist <= publish <= gossip <= 0.
    #[error("thresholds must satisfy graylist <= publish <= gossip <= 0 <= accept_px")]
    Thresholds,
    /// A score weight has the wrong sign or a decay is outside (0, 1).
    #[error("score parameter `{0}` is out of range")]
    Score(&'static str),
    /// A score parameter of one topic is out of range.
    #[error("score parameter `{field}` of topic `{topic}` is out of range")]
    TopicScore {
        /// The topic.
        topic: String,
        /// The parameter.
        field: &'static str,
    },
}

/// Router parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Target mesh degree (D).
    pub d: usize,
    /// Graft below this many mesh peers (D_lo).
    pub d_lo: usize,
    /// Prune above this many mesh peers (D_high).
    pub d_high: usize,
    /// Outbound peers kept in each mesh (D_out).
    pub d_out: usize,
    /// Peers kept by score when pruning an oversubscribed mesh (D_score).
    pub d_score: usize,
    /// Least peers receiving IHAVE per topic per heartbeat (D_lazy).
    pub d_lazy: usize,
    /// Fraction of eligible non-mesh peers receiving IHAVE, when above D_lazy.
    pub gossip_factor: f64,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Fanout state of a topic we stopped publishing to is dropped after this.
    pub fanout_ttl: Duration,
    /// Heartbeat windows of messages kept for IWANT.
    pub mcache_len: usize,
    /// Most recent windows advertised in IHAVE.
    pub mcache_gossip: usize,
    /// Byte bound of the message cache (oldest messages go first).
    pub mcache_max_bytes: usize,
    /// How long a message id is remembered as seen.
    pub seen_ttl: Duration,
    /// Most ids remembered as seen.
    pub seen_capacity: usize,
    /// Heartbeats during which our own messages are advertised (IHAVE) to
    /// mesh and fanout peers not known to have them: a publisher whose
    /// first copies were lost (or whose peers died unnoticed) still gets
    /// its message out once it has live peers again.
    pub own_gossip_windows: usize,
    /// Every this many heartbeats each mesh peer gets our GRAFT again
    /// (control rides on unreliable datagrams; a lost GRAFT or PRUNE would
    /// leave the two ends disagreeing). 0 = never.
    pub graft_refresh_ticks: u64,
    /// Own messages go to every topic peer above the publish threshold.
    pub flood_publish: bool,
    /// Most ids in IHAVE (and requested by IWANT) per peer per heartbeat.
    pub max_ihave_length: usize,
    /// Most IHAVE messages processed per peer per heartbeat.
    pub max_ihave_messages: usize,
    /// Time for a peer to deliver a message it advertised and we asked for.
    pub iwant_followup: Duration,
    /// Times one cached message is sent to one peer on IWANT.
    pub gossip_retransmission: u32,
    /// Backoff after a PRUNE.
    pub prune_backoff: Duration,
    /// Backoff after leaving a topic.
    pub unsubscribe_backoff: Duration,
    /// A GRAFT this soon after a PRUNE counts as a flood (extra penalty).
    pub graft_flood_threshold: Duration,
    /// Peers offered by peer exchange in one PRUNE.
    pub prune_peers: usize,
    /// Heartbeats between opportunistic grafting rounds.
    pub opportunistic_graft_ticks: u64,
    /// Peers grafted per opportunistic round.
    pub opportunistic_graft_peers: usize,
    /// Send IDONTWANT for received messages larger than this many bytes.
    pub idontwant_threshold: usize,
    /// IDONTWANT on or off (measurements turn it off).
    pub idontwant: bool,
    /// Most IDONTWANT ids remembered per peer.
    pub max_idontwant_per_peer: usize,
    /// Score function parameters.
    pub score: ScoreParams,
    /// Score thresholds.
    pub thresholds: Thresholds,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            d: 6,
            d_lo: 4,
            d_high: 12,
            d_out: 2,
            d_score: 4,
            d_lazy: 6,
            gossip_factor: 0.25,
            heartbeat: Duration::from_millis(1000),
            fanout_ttl: Duration::from_secs(60),
            mcache_len: 120,
            mcache_gossip: 3,
            mcache_max_bytes: 32 << 20,
            seen_ttl: Duration::from_secs(120),
            seen_capacity: 200_000,
            own_gossip_windows: 60,
            graft_refresh_ticks: 10,
            flood_publish: true,
            max_ihave_length: 5000,
            max_ihave_messages: 10,
            iwant_followup: Duration::from_secs(3),
            gossip_retransmission: 3,
            prune_backoff: Duration::from_secs(60),
            unsubscribe_backoff: Duration::from_secs(10),
            graft_flood_threshold: Duration::from_secs(10),
            prune_peers: 16,
            opportunistic_graft_ticks: 60,
            opportunistic_graft_peers: 2,
            idontwant_threshold: 1024,
            idontwant: true,
            max_idontwant_per_peer: 4096,
            score: ScoreParams::default(),
            thresholds: Thresholds::default(),
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// Checks that the parameters are consistent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.d_lo <= self.d && self.d <= self.d_high) {
            return Err(ConfigError::Degrees {
                d_lo: self.d_lo,
                d: self.d,
                d_high: self.d_high,
            });
        }
        if self.d_out >= self.d_lo.max(1) || self.d_out > self.d / 2 {
            return Err(ConfigError::DOut { d_out: self.d_out });
        }
        if self.d_score > self.d {
            return Err(ConfigError::DScore(self.d_score));
        }
        if self.heartbeat.is_zero() {
            return Err(ConfigError::Heartbeat);
        }
        if self.mcache_gossip == 0 || self.mcache_gossip > self.mcache_len {
            return Err(ConfigError::Mcache {
                gossip: self.mcache_gossip,
                len: self.mcache_len,
            });
        }
        self.thresholds.validate()?;
        self.score.validate()
    }
}

/// Builds a validated [`Config`].
#[derive(Debug, Clone)]
pub struct ConfigBuilder(Config);

macro_rules! setters {
    ($($(#[$m:meta])* $name:ident: $t:ty),* $(,)?) => {
        $( $(#[$m])* pub fn $name(mut self, v: $t) -> Self { self.0.$name = v; self } )*
    };
}

impl ConfigBuilder {
    setters! {
        /// Sets D.
        d: usize,
        /// Sets D_lo.
        d_lo: usize,
        /// Sets D_high.
        d_high: usize,
        /// Sets D_out.
        d_out: usize,
        /// Sets D_score.
        d_score: usize,
        /// Sets D_lazy.
        d_lazy: usize,
        /// Sets the heartbeat period.
        heartbeat: Duration,
        /// Sets the message cache history length in heartbeats.
        mcache_len: usize,
        /// Sets the windows advertised in IHAVE.
        mcache_gossip: usize,
        /// Sets the message cache byte bound.
        mcache_max_bytes: usize,
        /// Sets the seen-cache TTL.
        seen_ttl: Duration,
        /// Turns flood publishing on or off.
        flood_publish: bool,
        /// Turns IDONTWANT on or off.
        idontwant: bool,
        /// Sets the IDONTWANT size threshold.
        idontwant_threshold: usize,
        /// Sets the prune backoff.
        prune_backoff: Duration,
        /// Sets the score parameters.
        score: ScoreParams,
        /// Sets the thresholds.
        thresholds: Thresholds,
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_and_valid() {
        let c = Config::builder().build().unwrap();
        assert_eq!((c.d, c.d_lo, c.d_high, c.d_out, c.d_lazy), (6, 4, 12, 2, 6));
        assert_eq!(c.heartbeat, Duration::from_secs(1));
        assert_eq!(c.thresholds.graylist, -10_000.0);
    }

    #[test]
    fn builder_rejects_inconsistent_values() {
        assert!(matches!(
            Config::builder().d(20).build(),
            Err(ConfigError::Degrees { .. })
        ));
        assert!(matches!(
            Config::builder().d_out(4).build(),
            Err(ConfigError::DOut { .. })
        ));
        assert_eq!(
            Config::builder().heartbeat(Duration::ZERO).build(),
            Err(ConfigError::Heartbeat)
        );
        assert!(matches!(
            Config::builder().mcache_gossip(0).build(),
            Err(ConfigError::Mcache { .. })
        ));
        let t = Thresholds {
            publish: 5.0,
            ..Thresholds::default()
        };
        assert_eq!(
            Config::builder().thresholds(t).build(),
            Err(ConfigError::Thresholds)
        );
    }
}
