//! Deterministic many-node simulator for Moss: real `moss_mesh::Node`s in
//! one process on a virtual clock, with per-link latency, jitter, loss, an
//! uplink bandwidth model, churn, a rendezvous (tracker) model, attackers,
//! and the metrics of a scale run. The same seed gives the same run, byte
//! for byte.

pub mod metrics;
pub mod net;
pub mod rng;
pub mod scenario;

pub use metrics::Report;
pub use net::{LinkModel, Sim};
pub use scenario::{Attack, Scenario};
