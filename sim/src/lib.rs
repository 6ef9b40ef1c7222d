//! Deterministic many-node simulator for Moss: real `moss_mesh::Node`s in
//! one process on a virtual clock, with per-link latency, jitter, loss, an
//! uplink bandwidth model, NATs, churn, a rendezvous (tracker) model,
//! attackers, and the metrics of a scale run. The same seed gives the same
//! run, byte for byte.

pub mod metrics;
pub mod nat;
pub mod net;
pub mod overlay;
pub mod queue;
pub mod rng;
pub mod scenario;

pub use metrics::Report;
pub use nat::{NatKind, NatStats};
pub use net::{LinkModel, Sim};
pub use scenario::{Attack, NatModel, Scenario};
