//! The façade the mesh node drives: local counters in, deltas out, remote
//! deltas merged, epochs finalized into the chain.

use crate::chain::Chain;
use crate::config::{ConfigError, TelemetryConfig};
use crate::contribution::{clamp_degree, Contribution, LocalMetrics};
use crate::crdt::EpochState;
use crate::delta::StatDelta;
use crate::eid::{eid, Eid};
use crate::nat::{NatType, UnknownNatType};
use crate::snapshot::{Disabled, EpochReport, Snapshot};
use rand_core::RngCore;
use std::collections::BTreeMap;
use thiserror::Error;

/// Default most entries one open epoch may hold (2^18 ≈ 262 k contributors,
/// roughly 30 MiB of state); see [`Telemetry::set_epoch_entry_cap`].
pub const DEFAULT_EPOCH_ENTRY_CAP: usize = 1 << 18;

/// Why a remote delta was not applied. The mesh can use the reason to score
/// the sender: a mismatch of epoch length is a misconfigured peer, a stale
/// epoch is usually a slow path, an epoch from the future is clock skew or
/// an attempt to open state early.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// Telemetry is disabled on this node.
    #[error("telemetry is disabled")]
    Disabled,
    /// The sender uses another epoch length.
    #[error("sender epoch_sec {theirs} differs from ours ({ours})")]
    EpochLengthMismatch {
        /// Our `epoch_sec`.
        ours: u64,
        /// The sender's.
        theirs: u32,
    },
    /// The epoch is already finalized or older than the open window.
    #[error("epoch {epoch} is closed (oldest open epoch is {oldest_open})")]
    EpochTooOld {
        /// The delta's epoch.
        epoch: u64,
        /// The oldest epoch still accepted.
        oldest_open: u64,
    },
    /// Merging would take the epoch past the per-epoch entry cap (a memory
    /// bound against floods of fake eids).
    #[error("epoch {epoch} is full ({cap} entries)")]
    EpochFull {
        /// The delta's epoch.
        epoch: u64,
        /// The cap in force.
        cap: usize,
    },
    /// The epoch is more than one epoch ahead of our clock.
    #[error("epoch {epoch} is ahead of the open window (newest open epoch is {newest_open})")]
    EpochTooNew {
        /// The delta's epoch.
        epoch: u64,
        /// The newest epoch accepted.
        newest_open: u64,
    },
}

impl ApplyError {
    /// A stable snake_case name for drop counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Disabled => "disabled",
            ApplyError::EpochLengthMismatch { .. } => "epoch_length_mismatch",
            ApplyError::EpochTooOld { .. } => "epoch_too_old",
            ApplyError::EpochTooNew { .. } => "epoch_too_new",
            ApplyError::EpochFull { .. } => "epoch_full",
        }
    }
}

/// The node's own entry for the epoch it is contributing to.
#[derive(Debug, Clone, Copy)]
struct OwnEntry {
    epoch: u64,
    eid: Eid,
    contribution: Contribution,
}

/// Telemetry for one node.
///
/// Epoch `e` covers unix seconds `[e·epoch_sec, (e+1)·epoch_sec)`. The node
/// accepts deltas for epochs `current−1 ..= current+1` (never for an epoch
/// already in its chain) and finalizes an epoch into the chain once its
/// clock reaches `epoch+2`, so late deltas have a full epoch to arrive.
///
/// Contribution cadence: at the first tick of each epoch the node picks a
/// random moment in the next `min(gossip interval, epoch_sec/4)` seconds (so
/// a large mesh does not burst at every epoch boundary). At that moment it
/// builds its contribution for the epoch — the bandwidth recorded since its
/// previous contribution was built (i.e. over the preceding epoch), clamped
/// and noised once — and gossips it. It re-gossips the same bytes every
/// [`TelemetryConfig::gossip_interval_sec`] so losses heal, and bumps the
/// version only when its degree or NAT class changes (degree and NAT are not
/// noised, so an update spends no extra privacy budget: each epoch's
/// bandwidth is noised exactly once).
#[derive(Debug, Clone)]
pub struct Telemetry {
    config: TelemetryConfig,
    pubkey: [u8; 32],
    pending_in: u64,
    pending_out: u64,
    degree: u32,
    nat: NatType,
    own: Option<OwnEntry>,
    /// Unix second of the next due re-gossip of `own`.
    next_emit: u64,
    /// `(epoch, unix second)` of the first emission scheduled for an epoch
    /// the node has not contributed to yet.
    first_emit: Option<(u64, u64)>,
    current: Option<u64>,
    states: BTreeMap<u64, EpochState>,
    chain: Chain,
    entry_cap: usize,
}

impl Telemetry {
    /// Telemetry for the node whose eids derive from `pubkey`
    /// (`eid = BLAKE2s(epoch ‖ pubkey)`). The config is validated even when
    /// disabled.
    ///
    /// Passing the Ed25519 public key is the reference behaviour; note that
    /// anyone who knows that key (every peer does) can then compute the
    /// node's eid for any epoch and pick out its contribution. Passing a
    /// 32-byte per-node secret instead (e.g. derived from the identity's
    /// private key) keeps the same formula but makes eids unlinkable even to
    /// peers; nothing else in the crate depends on which is used.
    pub fn new(config: TelemetryConfig, pubkey: [u8; 32]) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            pubkey,
            pending_in: 0,
            pending_out: 0,
            degree: 0,
            nat: NatType::Unknown,
            own: None,
            next_emit: 0,
            first_emit: None,
            current: None,
            states: BTreeMap::new(),
            chain: Chain::default(),
            entry_cap: DEFAULT_EPOCH_ENTRY_CAP,
        })
    }

    /// The config in force.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// Whether telemetry is on.
    pub fn is_enabled(&self) -> bool {
        self.config.enabled
    }

    /// Adds bytes received and sent (ciphertext, all sessions) since the
    /// last call.
    pub fn record_bandwidth(&mut self, bytes_in: u64, bytes_out: u64) {
        self.pending_in = self.pending_in.saturating_add(bytes_in);
        self.pending_out = self.pending_out.saturating_add(bytes_out);
    }

    /// Sets the current number of connected peers.
    pub fn set_degree(&mut self, degree: u32) {
        self.degree = degree;
    }

    /// Sets the NAT class from its Moss string (`""` means `unknown`). An
    /// unknown string is rejected and leaves the class unchanged.
    pub fn set_nat(&mut self, nat: &str) -> Result<(), UnknownNatType> {
        self.nat = nat.parse()?;
        Ok(())
    }

    /// Sets the NAT class.
    pub fn set_nat_type(&mut self, nat: NatType) {
        self.nat = nat;
    }

    /// Sets the most entries an open epoch may hold (default
    /// [`DEFAULT_EPOCH_ENTRY_CAP`]). Deltas that would add eids beyond it are
    /// rejected whole with [`ApplyError::EpochFull`]; updates to known eids
    /// and the node's own entry are always accepted. Nodes converge as long
    /// as the real contributor count stays under the cap.
    pub fn set_epoch_entry_cap(&mut self, cap: usize) {
        self.entry_cap = cap;
    }

    /// The current epoch as last seen through `tick`/`apply_delta`.
    pub fn current_epoch(&self) -> Option<u64> {
        self.current
    }

    /// This node's eid for `epoch`.
    pub fn own_eid(&self, epoch: u64) -> Eid {
        eid(epoch, &self.pubkey)
    }

    /// Advances the clock to `unix_secs` (finalizing epochs that left the
    /// window) and returns the node's own delta when it is due: at its
    /// scheduled first emission in an epoch, when its degree or NAT class
    /// changed, and every gossip interval otherwise. `None` when disabled or
    /// nothing is due. `rng` supplies the DP noise and the emission jitter.
    pub fn tick<R: RngCore + ?Sized>(&mut self, unix_secs: u64, rng: &mut R) -> Option<StatDelta> {
        if !self.config.enabled {
            return None;
        }
        let epoch = self.advance(unix_secs);
        let degree = clamp_degree(self.degree, self.config.degree_cap);
        let mut changed = false;
        let mut own = match self.own {
            Some(own) if own.epoch == epoch => {
                let mut own = own;
                if own.contribution.degree != degree || own.contribution.nat != self.nat {
                    own.contribution.degree = degree;
                    own.contribution.nat = self.nat;
                    own.contribution.version = own.contribution.version.saturating_add(1);
                    changed = true;
                }
                own
            }
            _ => {
                let due = match self.first_emit {
                    Some((e, at)) if e == epoch => at,
                    _ => {
                        let at = self.first_emission_at(epoch, unix_secs, rng);
                        self.first_emit = Some((epoch, at));
                        at
                    }
                };
                if unix_secs < due {
                    return None;
                }
                self.first_emit = None;
                let metrics = LocalMetrics {
                    bandwidth_in: self.pending_in,
                    bandwidth_out: self.pending_out,
                    degree: self.degree,
                    nat: self.nat,
                };
                self.pending_in = 0;
                self.pending_out = 0;
                changed = true;
                OwnEntry {
                    epoch,
                    eid: self.own_eid(epoch),
                    contribution: Contribution::from_local(&metrics, &self.config, 1, rng),
                }
            }
        };
        let state = self
            .states
            .entry(epoch)
            .or_insert_with(|| EpochState::new(epoch));
        // Lamport step: if the mesh holds another value for our eid (e.g. from
        // before a restart) at an equal or higher version, go above it.
        if let Some(seen) = state.get(&own.eid) {
            if *seen != own.contribution && seen.version >= own.contribution.version {
                own.contribution.version = seen.version.saturating_add(1);
                changed = true;
            }
        }
        state.insert(own.eid, own.contribution);
        self.own = Some(own);
        if !changed && unix_secs < self.next_emit {
            return None;
        }
        self.next_emit = unix_secs.saturating_add(self.config.gossip_interval_sec());
        StatDelta::new(
            self.epoch_sec_u32(),
            epoch,
            None,
            [(own.eid, own.contribution)],
        )
        .ok()
    }

    /// Merges a remote delta received at `unix_secs` (which also advances
    /// the clock and may finalize epochs).
    pub fn apply_delta(&mut self, delta: &StatDelta, unix_secs: u64) -> Result<(), ApplyError> {
        if !self.config.enabled {
            return Err(ApplyError::Disabled);
        }
        if u64::from(delta.epoch_sec()) != self.config.epoch_sec {
            return Err(ApplyError::EpochLengthMismatch {
                ours: self.config.epoch_sec,
                theirs: delta.epoch_sec(),
            });
        }
        let current = self.advance(unix_secs);
        let (oldest_open, newest_open) = self.open_window(current);
        let epoch = delta.epoch();
        if epoch < oldest_open {
            return Err(ApplyError::EpochTooOld { epoch, oldest_open });
        }
        if epoch > newest_open {
            return Err(ApplyError::EpochTooNew { epoch, newest_open });
        }
        let state = self
            .states
            .entry(epoch)
            .or_insert_with(|| EpochState::new(epoch));
        let new_eids = delta
            .entries()
            .iter()
            .filter(|(e, _)| state.get(e).is_none())
            .count();
        if state.contributors().saturating_add(new_eids) > self.entry_cap {
            return Err(ApplyError::EpochFull {
                epoch,
                cap: self.entry_cap,
            });
        }
        if let Some(h) = delta.hll() {
            state.merge_hll(h);
        }
        for (e, c) in delta.entries() {
            state.insert(*e, *c);
        }
        Ok(())
    }

    /// The report for the current epoch (`{}` in JSON when disabled). Its
    /// `epoch_digest` covers the state merged so far, chained to the latest
    /// finalized epoch.
    pub fn snapshot(&self) -> Snapshot {
        if !self.config.enabled {
            return Snapshot::Disabled(Disabled {});
        }
        let epoch = self.current.unwrap_or(0);
        let prev = self.chain.head_digest();
        let head = self.chain.head_epoch();
        let k = self.config.k_anon;
        let report = match self.states.get(&epoch) {
            Some(state) => EpochReport::from_state(state, k, prev, head),
            None => EpochReport::from_state(&EpochState::new(epoch), k, prev, head),
        };
        Snapshot::Report(report)
    }

    /// The chain of finalized epochs (serializes as the `/api/chain` array;
    /// use [`Chain::recent`] for `?limit=`).
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The merged state of an open epoch.
    pub fn state(&self, epoch: u64) -> Option<&EpochState> {
        self.states.get(&epoch)
    }

    /// Every open epoch's full state as deltas, for anti-entropy with a new
    /// or lagging peer (empty when disabled).
    pub fn state_deltas(&self) -> Vec<StatDelta> {
        if !self.config.enabled {
            return Vec::new();
        }
        let epoch_sec = self.epoch_sec_u32();
        self.states
            .values()
            .flat_map(|s| StatDelta::from_state(epoch_sec, s).unwrap_or_default())
            .collect()
    }

    /// The unix second at which [`Telemetry::tick`] next has work (a
    /// scheduled emission, a re-gossip or an epoch boundary); `Some(0)`
    /// before the first tick, `None` when disabled. Ticking more often is
    /// harmless.
    pub fn poll_timeout(&self) -> Option<u64> {
        if !self.config.enabled {
            return None;
        }
        let Some(current) = self.current else {
            return Some(0);
        };
        let next_epoch = current
            .saturating_add(1)
            .saturating_mul(self.config.epoch_sec);
        let due = match (self.own, self.first_emit) {
            (Some(own), _) if own.epoch == current => self.next_emit,
            (_, Some((e, at))) if e == current => at,
            _ => 0,
        };
        Some(due.min(next_epoch))
    }

    /// When to send the first contribution of `epoch` whose first tick is at
    /// `now`: a uniform jitter of up to `min(gossip interval, epoch_sec/4)`
    /// seconds, kept inside the epoch.
    fn first_emission_at<R: RngCore + ?Sized>(&self, epoch: u64, now: u64, rng: &mut R) -> u64 {
        let spread = self
            .config
            .gossip_interval_sec()
            .min(self.config.epoch_sec / 4);
        let jitter = rng.next_u64().checked_rem(spread).unwrap_or(0);
        let last_second = epoch
            .saturating_add(1)
            .saturating_mul(self.config.epoch_sec)
            .saturating_sub(1);
        now.saturating_add(jitter).min(last_second).max(now)
    }

    /// `epoch_sec` as carried on the wire (validated to fit a u32).
    fn epoch_sec_u32(&self) -> u32 {
        u32::try_from(self.config.epoch_sec).unwrap_or(u32::MAX)
    }

    /// The accepted epoch range for `current`.
    fn open_window(&self, current: u64) -> (u64, u64) {
        let mut oldest = current.saturating_sub(1);
        if let Some(head) = self.chain.head() {
            oldest = oldest.max(head.epoch.saturating_add(1));
        }
        (oldest, current.saturating_add(1))
    }

    /// Moves the clock forward (never back) and finalizes every held epoch
    /// older than `current − 1`, oldest first. Returns the current epoch.
    fn advance(&mut self, unix_secs: u64) -> u64 {
        let now_epoch = self.config.epoch_at(unix_secs);
        let current = self.current.map_or(now_epoch, |c| c.max(now_epoch));
        self.current = Some(current);
        while let Some(entry) = self.states.first_entry() {
            if entry.key().saturating_add(1) >= current {
                break;
            }
            let state = entry.remove();
            // Epochs are removed in ascending order and the window never
            // admits an epoch at or below the head, so this cannot fail.
            let _ = self.chain.append(state.epoch(), state.state_digest());
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{cross_check, verify};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const T0: u64 = 1_771_500_000; // epoch 5_905_000 at 300 s

    fn config() -> TelemetryConfig {
        TelemetryConfig {
            enabled: true,
            ..TelemetryConfig::default()
        }
    }

    /// Ticks every second from `from` until the node emits; returns the
    /// delta and the second it came out. Fails if nothing within an epoch.
    fn emit(t: &mut Telemetry, from: u64, rng: &mut ChaCha20Rng) -> (StatDelta, u64) {
        for now in from..from + t.config().epoch_sec {
            if let Some(d) = t.tick(now, rng) {
                return (d, now);
            }
        }
        panic!("no emission within an epoch of {from}");
    }

    fn node(i: u32) -> Telemetry {
        let mut pk = [0u8; 32];
        pk[..4].copy_from_slice(&i.to_be_bytes());
        Telemetry::new(config(), pk).unwrap()
    }

    #[test]
    fn disabled_node_is_inert() {
        let mut t = Telemetry::new(TelemetryConfig::default(), [1; 32]).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(t.tick(T0, &mut rng).is_none());
        assert_eq!(t.snapshot().to_json(), "{}");
        let (d, _) = emit(&mut node(2), T0, &mut rng);
        assert_eq!(t.apply_delta(&d, T0), Err(ApplyError::Disabled));
        assert_eq!(t.poll_timeout(), None);
        assert!(t.state_deltas().is_empty());
        assert_eq!(serde_json::to_string(t.chain()).unwrap(), "[]");
    }

    #[test]
    fn new_rejects_bad_config() {
        let bad = TelemetryConfig {
            k_anon: 0,
            ..config()
        };
        assert_eq!(Telemetry::new(bad, [0; 32]).unwrap_err().field(), "k_anon");
    }

    #[test]
    fn emission_cadence() {
        let mut t = node(1);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        t.set_degree(4);
        t.set_nat("public").unwrap();
        assert_eq!(t.poll_timeout(), Some(0));
        let (first, at) = emit(&mut t, T0, &mut rng);
        assert!(at < T0 + 75, "first emission jittered within the interval");
        assert_eq!(first.epoch(), T0 / 300);
        assert_eq!(first.entries().len(), 1);
        assert_eq!(first.entries()[0].0, t.own_eid(T0 / 300));
        assert_eq!(first.entries()[0].1.version, 1);
        assert_eq!(t.poll_timeout(), Some(at + 75));
        assert!(t.tick(at + 10, &mut rng).is_none(), "nothing due yet");
        // Interval elapsed: the same bytes again (no fresh noise).
        let again = t.tick(at + 75, &mut rng).expect("re-gossip");
        assert_eq!(again, first);
        // Degree change: version bump, bandwidth unchanged.
        t.set_degree(9);
        let upd = t.tick(at + 76, &mut rng).expect("update");
        assert_eq!(upd.entries()[0].1.version, 2);
        assert_eq!(upd.entries()[0].1.degree, 9);
        assert_eq!(
            upd.entries()[0].1.bandwidth_in,
            first.entries()[0].1.bandwidth_in
        );
        assert!(t.set_nat("wormhole").is_err());
        assert!(t.tick(at + 77, &mut rng).is_none());
        // New epoch: new eid, version restarts.
        let (next, _) = emit(&mut t, T0 + 300, &mut rng);
        assert_eq!(next.epoch(), T0 / 300 + 1);
        assert_ne!(next.entries()[0].0, first.entries()[0].0);
        assert_eq!(next.entries()[0].1.version, 1);
    }

    #[test]
    fn first_emissions_are_spread_over_the_interval() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let offsets: Vec<u64> = (0..40)
            .map(|i| emit(&mut node(i), T0, &mut rng).1 - T0)
            .collect();
        assert!(offsets.iter().all(|&o| o < 75));
        let distinct: std::collections::BTreeSet<_> = offsets.iter().collect();
        assert!(distinct.len() > 20, "{offsets:?}");
        // A node that first ticks at the very end of an epoch still sends
        // before the epoch closes.
        let mut late = node(99);
        let (d, at) = emit(&mut late, T0 + 299, &mut rng);
        assert_eq!((d.epoch(), at), (T0 / 300, T0 + 299));
    }

    #[test]
    fn bandwidth_is_clamped_and_reported_once_per_epoch() {
        let cfg = TelemetryConfig {
            dp_epsilon: 0.0,
            bandwidth_cap_bytes: 1000,
            ..config()
        };
        let mut t = Telemetry::new(cfg, [3; 32]).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        t.record_bandwidth(10, 20);
        let (d, _) = emit(&mut t, T0, &mut rng);
        assert_eq!(
            (
                d.entries()[0].1.bandwidth_in,
                d.entries()[0].1.bandwidth_out
            ),
            (10, 20)
        );
        t.record_bandwidth(5000, 7);
        t.record_bandwidth(5000, 0);
        let (d2, _) = emit(&mut t, T0 + 300, &mut rng);
        assert_eq!(
            (
                d2.entries()[0].1.bandwidth_in,
                d2.entries()[0].1.bandwidth_out
            ),
            (1000, 7)
        );
    }

    #[test]
    fn lamport_bump_over_a_previous_incarnation() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut old = node(7);
        old.record_bandwidth(123, 0);
        let (stale, at) = emit(&mut old, T0, &mut rng);
        let mut reborn = node(7);
        // The mesh gossips our pre-restart entry back to us first.
        reborn.apply_delta(&stale, at).unwrap();
        let (fresh, at) = emit(&mut reborn, at, &mut rng);
        let (e, c) = fresh.entries()[0];
        assert_eq!(e, stale.entries()[0].0);
        assert!(c.version > stale.entries()[0].1.version);
        assert_eq!(reborn.state(T0 / 300).unwrap().get(&e), Some(&c));
        // And the old incarnation adopts the new value on merge.
        old.apply_delta(&fresh, at).unwrap();
        assert_eq!(old.state(T0 / 300).unwrap().get(&e), Some(&c));
    }

    #[test]
    fn window_rejections_carry_reasons() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut a = node(1);
        let mut b = node(2);
        let e = T0 / 300;
        let (d_now, _) = emit(&mut b, T0, &mut rng);
        a.tick(T0 + 600, &mut rng); // a is at epoch e+2
        assert_eq!(
            a.apply_delta(&d_now, T0 + 600),
            Err(ApplyError::EpochTooOld {
                epoch: e,
                oldest_open: e + 1
            })
        );
        let mut c = node(3);
        let (future, _) = emit(&mut c, T0 + 1200, &mut rng); // epoch e+4
        assert_eq!(
            a.apply_delta(&future, T0 + 600),
            Err(ApplyError::EpochTooNew {
                epoch: e + 4,
                newest_open: e + 3
            })
        );
        let odd = StatDelta::new(60, e + 2, None, []).unwrap();
        let err = a.apply_delta(&odd, T0 + 600).unwrap_err();
        assert_eq!(
            err,
            ApplyError::EpochLengthMismatch {
                ours: 300,
                theirs: 60
            }
        );
        assert_eq!(err.reason(), "epoch_length_mismatch");
        // Previous and next epochs are open.
        let mut p = node(4);
        let (prev, _) = emit(&mut p, T0 + 300, &mut rng);
        assert_eq!(a.apply_delta(&prev, T0 + 600), Ok(()));
        let mut n = node(5);
        let (next, _) = emit(&mut n, T0 + 900, &mut rng);
        assert_eq!(a.apply_delta(&next, T0 + 600), Ok(()));
    }

    #[test]
    fn entry_cap_rejects_floods_but_not_updates() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let mut t = node(0);
        t.set_epoch_entry_cap(3);
        let mut deltas = Vec::new();
        for i in 1..=4 {
            let mut n = node(i);
            deltas.push(emit(&mut n, T0, &mut rng).0);
            n.set_degree(50);
            deltas.push(n.tick(T0 + 100, &mut rng).unwrap());
        }
        let at = T0 + 150;
        for d in &deltas[..6] {
            t.apply_delta(d, at).unwrap();
        }
        let err = t.apply_delta(&deltas[6], at).unwrap_err();
        assert_eq!(
            err,
            ApplyError::EpochFull {
                epoch: T0 / 300,
                cap: 3
            }
        );
        assert_eq!(err.reason(), "epoch_full");
        // Known eids still update.
        t.apply_delta(&deltas[1], at).unwrap();
        assert_eq!(t.state(T0 / 300).unwrap().contributors(), 3);
        // The node's own entry always fits.
        assert!(emit(&mut t, at, &mut rng).0.entries().len() == 1);
        assert_eq!(t.state(T0 / 300).unwrap().contributors(), 4);
    }

    #[test]
    fn epochs_finalize_into_a_verifiable_chain() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let mut t = node(1);
        let e = T0 / 300;
        for k in 0..6 {
            emit(&mut t, T0 + k * 300, &mut rng);
        }
        // At epoch e+5, epochs e..=e+3 are final; e+4 and e+5 are open.
        let links = t.chain().recent(0);
        assert_eq!(
            links.iter().map(|l| l.epoch).collect::<Vec<_>>(),
            vec![e, e + 1, e + 2, e + 3]
        );
        assert_eq!(verify(&links), Ok(()));
        assert_eq!(links[0].prev_digest, crate::chain::Digest::ZERO);
        let snap = t.snapshot();
        let r = snap.report().unwrap();
        assert_eq!(r.epoch, e + 5);
        assert_eq!(r.chain_head, e + 3);
        assert_eq!(r.prev_digest, links[3].epoch_digest);
        assert_eq!(r.contributors, 1);
        assert!(!r.k_anon_ok);
        // A long sleep finalizes what is held and leaves a gap.
        emit(&mut t, T0 + 100 * 300, &mut rng);
        let links = t.chain().recent(0);
        assert_eq!(links.last().map(|l| l.epoch), Some(e + 5));
        assert_eq!(verify(&links), Ok(()));
        t.tick(T0 + 102 * 300, &mut rng);
        assert_eq!(t.chain().head_epoch(), e + 100);
        assert_eq!(verify(&t.chain().recent(0)), Ok(()));
    }

    #[test]
    fn chain_history_is_bounded() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let cfg = TelemetryConfig {
            epoch_sec: 1,
            ..config()
        };
        let mut t = Telemetry::new(cfg, [9; 32]).unwrap();
        let total = crate::chain::DEFAULT_CHAIN_CAPACITY as u64 + 64;
        for s in 0..total {
            t.tick(1000 + s, &mut rng);
        }
        assert_eq!(t.chain().len(), crate::chain::DEFAULT_CHAIN_CAPACITY);
        assert_eq!(t.chain().head_epoch(), 1000 + total - 3);
        assert_eq!(verify(&t.chain().recent(0)), Ok(()));
        assert_eq!(t.chain().recent(64).len(), 64);
    }

    #[test]
    fn k_anon_gate_through_the_facade() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let mut observer = node(0);
        let mut deltas = Vec::new();
        for i in 1..=4 {
            let mut n = node(i);
            n.set_nat("cgnat").unwrap();
            n.set_degree(3);
            deltas.push(emit(&mut n, T0, &mut rng).0);
        }
        emit(&mut observer, T0, &mut rng);
        for d in &deltas[..3] {
            observer.apply_delta(d, T0 + 100).unwrap();
        }
        let json = observer.snapshot().to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["contributors"], 4);
        assert_eq!(v["k_anon_ok"], false);
        assert!(v.get("bandwidth_in_total").is_none());
        assert!(v.get("nat_histogram").is_none());
        assert!(v.get("degree_histogram").is_none());
        observer.apply_delta(&deltas[3], T0 + 100).unwrap();
        let v: serde_json::Value = serde_json::from_str(&observer.snapshot().to_json()).unwrap();
        assert_eq!(v["contributors"], 5);
        assert_eq!(v["k_anon_ok"], true);
        assert!(v["bandwidth_in_total"].is_u64());
        assert!(v["bandwidth_out_total"].is_u64());
        assert_eq!(v["nat_histogram"]["cgnat"], 4);
        assert_eq!(v["nat_histogram"]["unknown"], 1);
        assert_eq!(v["degree_histogram"]["3-5"], 4);
        assert_eq!(v["degree_histogram"]["0"], 1);
        assert_eq!(v["node_count_estimate"], 5);
        assert_eq!(v["epoch_digest"].as_str().unwrap().len(), 64);
    }

    /// 500 nodes contribute; every delta travels the wire encoding to every
    /// other node in a random order with 10 % of deliveries dropped; a
    /// re-gossip round (the nodes' own interval re-emissions plus one
    /// anti-entropy exchange) delivers what was lost. All nodes must end
    /// with identical snapshots, digests and finalized chain links.
    #[test]
    fn five_hundred_nodes_converge_despite_loss_and_reordering() {
        const N: usize = 500;
        let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
        let mut nodes: Vec<Telemetry> = (0..N as u32).map(node).collect();
        let nats = NatType::ALL;
        let mut wires: Vec<Vec<u8>> = Vec::with_capacity(N);
        for (i, n) in nodes.iter_mut().enumerate() {
            n.set_degree((i % 37) as u32);
            n.set_nat_type(nats[i % nats.len()]);
            n.record_bandwidth((i as u64) * 1_000_003, (i as u64) * 7_919);
            let (d, _) = emit(n, T0, &mut rng);
            wires.push(d.encode());
        }
        // (receiver, sender) pairs in a random order.
        let mut deliveries: Vec<(usize, usize)> = (0..N)
            .flat_map(|r| (0..N).filter(move |&s| s != r).map(move |s| (r, s)))
            .collect();
        shuffle(&mut deliveries, &mut rng);
        let mut dropped = Vec::new();
        for &(r, s) in &deliveries {
            if rng.next_u32() % 10 == 0 {
                dropped.push((r, s));
                continue;
            }
            let d = StatDelta::decode(&wires[s]).unwrap();
            nodes[r].apply_delta(&d, T0 + 100).unwrap();
        }
        assert!(
            dropped.len() > N * (N - 1) / 20,
            "the test must actually drop"
        );
        let digests: std::collections::BTreeSet<_> = nodes
            .iter()
            .map(|n| n.snapshot().report().unwrap().epoch_digest)
            .collect();
        assert!(
            digests.len() > 1,
            "with loss the nodes must differ before re-gossip"
        );

        // Re-gossip: at the interval each node re-emits the same bytes; the
        // dropped deliveries are retried (in a new random order, duplicated
        // with some that already arrived).
        let mut regossip: Vec<Vec<u8>> = Vec::with_capacity(N);
        for n in nodes.iter_mut() {
            let d = n.tick(T0 + 200, &mut rng).expect("interval re-emission");
            regossip.push(d.encode());
        }
        assert_eq!(regossip, wires, "re-gossip must not re-noise");
        let mut retry = dropped.clone();
        retry.extend(deliveries.iter().step_by(97).copied());
        shuffle(&mut retry, &mut rng);
        for (r, s) in retry {
            let d = StatDelta::decode(&regossip[s]).unwrap();
            nodes[r].apply_delta(&d, T0 + 201).unwrap();
        }
        // One anti-entropy exchange on top (full state of node 0 to all).
        let full = nodes[0].state_deltas();
        for n in nodes.iter_mut().skip(1) {
            for d in &full {
                n.apply_delta(&StatDelta::decode(&d.encode()).unwrap(), T0 + 202)
                    .unwrap();
            }
        }

        let reference = nodes[0].snapshot().to_json();
        let report = nodes[0].snapshot().report().cloned().unwrap();
        assert_eq!(report.contributors, N as u64);
        assert!(report.k_anon_ok);
        let est = report.node_count_estimate as f64;
        assert!((est - N as f64).abs() / (N as f64) < 0.05, "estimate {est}");
        for (i, n) in nodes.iter().enumerate() {
            assert_eq!(n.snapshot().to_json(), reference, "node {i} diverged");
        }

        // Finalize: two epochs later every node has the same first link.
        for n in nodes.iter_mut() {
            n.tick(T0 + 600, &mut rng);
        }
        let link = *nodes[0].chain().head().unwrap();
        assert_eq!(link.epoch, T0 / 300);
        for n in &nodes {
            assert_eq!(n.chain().head(), Some(&link));
        }
        let a = nodes[1].chain().recent(0);
        let b = nodes[2].chain().recent(0);
        assert_eq!(cross_check(&a, &b).map(|r| r.digests_agree), Ok(1));
    }

    fn shuffle<T>(v: &mut [T], rng: &mut ChaCha20Rng) {
        for i in (1..v.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}
