//! The sans-IO Moss node: sessions, wire protocol, pub/sub and config.
//!
//! A [`Node`] is a deterministic state machine. Its driver feeds it
//! datagrams ([`Node::handle_datagram`]), the time ([`Node::handle_timeout`])
//! and commands (subscribe, publish, connect), and drains datagrams
//! ([`Node::poll_transmit`]), the next deadline ([`Node::poll_timeout`]) and
//! events ([`Node::poll_event`]). Time is a [`Time`] since an arbitrary
//! origin chosen by the driver; randomness comes from the seed given to
//! [`Node::new`].

pub mod config;
pub mod event;
mod handshake;
mod node;
pub mod preverify;
pub mod pubsub;
mod session;
pub mod shard;
pub mod stats;
mod telemetry;
pub mod wire;

pub use config::{Config, ConfigError};
pub use event::{DisconnectReason, Event, Message, Payload};
pub use moss_crypto::{Identity, PeerId};
pub use moss_telemetry::{ChainLink, Snapshot as NetworkSnapshot, TelemetryConfig};
pub use node::{DetachError, Node, PeerInfo, Transmit, IDLE_TIMEOUT, KEEPALIVE, TICK};
pub use preverify::{preverify, VerifiedFilter};
pub use pubsub::PublishError;
pub use shard::{Inbound, SessionShard, TransportOp};
pub use stats::{DropReason, Drops, Stats};
pub use telemetry::TELEMETRY_TOPIC;

/// Monotonic time since an origin the driver picks.
pub type Time = std::time::Duration;
