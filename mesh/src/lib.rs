//! The sans-IO Moss node: sessions, wire protocol, pub/sub and config.
//!
//! A [`Node`] is a deterministic state machine. Its driver feeds it
//! [`Input`]s through [`Node::handle`] (datagrams, the time, a shard's
//! plaintext; [`Node::handle_datagram`] and [`Node::handle_timeout`] are
//! shorthands) and commands (subscribe, publish, connect), and drains datagrams
//! ([`Node::poll_transmit`]), the next deadline ([`Node::poll_timeout`]) and
//! events ([`Node::poll_event`]). Time is a [`Time`] since an arbitrary
//! origin chosen by the driver; randomness comes from the seed given to
//! [`Node::new`].

pub mod config;
pub mod event;
mod handshake;
mod input;
mod node;
pub mod path;
pub mod preverify;
pub mod pubsub;
mod receive;
mod session;
pub mod shard;
pub mod stats;
mod table;
mod telemetry;
mod transport;
pub mod wire;

pub use config::{Config, ConfigError};
pub use event::{DisconnectReason, Event, Message, Payload};
pub use input::Input;
pub use moss_crypto::{Identity, PeerId};
pub use moss_telemetry::{ChainLink, Snapshot as NetworkSnapshot, TelemetryConfig};
pub use node::{DetachError, Node, PeerInfo, IDLE_TIMEOUT, KEEPALIVE, TICK};
pub use path::Path;
pub use preverify::{preverify, VerifiedFilter};
pub use pubsub::PublishError;
pub use shard::{Inbound, SessionShard, TransportOp};
pub use stats::{DropReason, Drops, Stats};
pub use telemetry::TELEMETRY_TOPIC;
pub use transport::Transmit;

/// Monotonic time since an origin the driver picks.
pub type Time = std::time::Duration;
