//! Sans-IO, privacy-preserving mesh telemetry for Moss: HyperLogLog node count, local differential privacy, an LWW-map CRDT per epoch, k-anonymous snapshots and a verifiable hash chain.
//!
//! Nothing in this crate touches a socket, a thread or a clock: time is passed
//! in as unix seconds and randomness as a [`rand_core::RngCore`]. The same code
//! therefore runs inside the mesh node, inside the deterministic simulator and
//! inside the explorer's wasm verifier.
//!
//! The pieces, bottom up:
//! - [`eid()`]: the unlinkable per-epoch id `BLAKE2s-256(epoch ‖ pubkey)`.
//! - [`Hll`]: a HyperLogLog sketch (p = 12, 4096 registers) for the node count.
//! - [`dp`]: clamping and Laplace noise applied by the contributing node.
//! - [`Contribution`]: one node's clamped, noised, versioned metrics.
//! - [`EpochState`]: the per-epoch CRDT (LWW map keyed by eid + HLL).
//! - [`StatDelta`]: the compact binary wire form (see `PROTOCOL.md`).
//! - [`Snapshot`]: the JSON report served by `/api/stats`.
//! - [`Chain`], [`verify`], [`cross_check`]: the per-node epoch hash chain
//!   served by `/api/chain` and checked by the explorer.
//! - [`audit()`], [`agreement`]: size-capped parsing of served documents, a
//!   full report of every chain break and the agreement of several
//!   gateways (what the explorer's wasm verifier runs).
//! - [`Telemetry`]: the façade the mesh node drives.
//!
//! A node with telemetry on produces a delta within its first epoch; the
//! delta travels as bytes and decodes to the same value:
//!
//! ```
//! use moss_telemetry::{StatDelta, Telemetry, TelemetryConfig};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let config = TelemetryConfig { enabled: true, ..TelemetryConfig::default() };
//! let mut node = Telemetry::new(config, [1; 32])?;
//! node.set_degree(6);
//! let mut rng = ChaCha20Rng::from_seed([0; 32]);
//! let start = 1_700_000_100; // unix seconds
//! let delta = (start..start + 300)
//!     .find_map(|now| node.tick(now, &mut rng))
//!     .expect("a delta within the first epoch");
//! let bytes = delta.encode();
//! assert_eq!(StatDelta::decode(&bytes)?, delta);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod audit;
pub mod chain;
pub mod config;
pub mod contribution;
pub mod crdt;
pub mod delta;
pub mod dp;
pub mod eid;
pub mod hll;
pub mod nat;
pub mod snapshot;
pub mod telemetry;

pub use audit::{
    agreement, audit, check_snapshot, parse_chain, parse_stats, Agreement, Break, BreakKind,
    ChainAudit, EpochAgreement, Gap, InputError, SnapshotIssue, StatsDoc, Verdict,
};
pub use chain::{
    cross_check, epoch_digest, verify, Chain, ChainError, ChainLink, CrossCheck, CrossCheckError,
    Digest, VerifyError, DEFAULT_CHAIN_CAPACITY,
};
pub use config::{ConfigError, TelemetryConfig};
pub use contribution::{Contribution, ContributionError, LocalMetrics, CONTRIBUTION_LEN};
pub use crdt::{EpochState, MergeError};
pub use delta::{DecodeError, DeltaError, StatDelta, DELTA_VERSION, MAX_DELTA_ENTRIES};
pub use eid::{eid, Eid};
pub use hll::{Hll, HllError, HLL_MAX_RANK, HLL_PRECISION, HLL_REGISTERS};
pub use nat::{NatType, UnknownNatType};
pub use snapshot::{degree_bucket, Disabled, EpochReport, Snapshot};
pub use telemetry::{ApplyError, Telemetry, DEFAULT_EPOCH_ENTRY_CAP};
