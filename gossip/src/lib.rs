//! Sans-IO GossipSub v1.1 router for Moss: topic meshes, GRAFT/PRUNE with
//! backoff and peer exchange, fanout, IHAVE/IWANT/IDONTWANT, message and seen
//! caches, and peer scoring (P1–P7 with P3b, per-topic parameters and a topic score
//! cap) with the thresholds of the reference.
//!
//! A [`Router`] knows nothing about sockets or wire bytes. Its host (the
//! mesh `Node`) tells it about peers, subscriptions, messages and control
//! messages, calls [`Router::heartbeat`] every heartbeat, and drains
//! [`Action`]s with [`Router::poll_action`]: send this cached message to that
//! peer, send this control message, dial this peer-exchange address. Time
//! and randomness are passed in, so equal inputs replay exactly.
//!
//! The per-message path does not allocate in steady state: the router
//! copies a message's body into its cache (one byte arena per heartbeat
//! window, recycled with the window), an [`Action::Send`] names the message
//! and the host reads the bytes with [`Router::cached_body`], and forward
//! lists and per-message peer sets use scratch or inline storage.

pub mod config;
pub mod control;
mod heartbeat;
pub mod mcache;
mod router;
pub mod score;
pub mod seen;
mod small;
pub mod types;

pub use config::{Config, ConfigBuilder, ConfigError};
pub use control::{Control, PxPeer};
pub use heartbeat::GRAFT_CATCH_UP;
pub use router::{AppScoreFn, PublishError, Received, Router, MAX_BACKOFF, MAX_PEER_TOPICS};
pub use score::{ScoreParams, Thresholds, TopicParams};
pub use types::{Action, MessageId, Topic};

/// Time since an origin the host picks (the mesh node's `Time`).
pub type Time = std::time::Duration;
