//! Moss: the embeddable peer-to-peer mesh runtime (I/O engine and public Rust API).
//!
//! A [`Node`] joins a mesh (a name, plus an optional pre-shared key), finds
//! peers through trackers, the Mainline DHT, LAN beacons or static
//! addresses, and exchanges topic messages with them over authenticated,
//! encrypted UDP sessions. The engine runs on its own thread; the handle is
//! cheap to call from any thread.
//!
//! Two nodes in one process, offline, one message (the blocking API):
//!
//! ```
//! use std::time::Duration;
//! // No trackers, DHT or LAN beacons: the nodes dial each other on loopback.
//! let offline = r#"{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false}"#;
//! let alice = moss::Node::builder("demo").config_json(offline)?.start()?;
//! let bob = moss::Node::builder("demo").config_json(offline)?.start()?;
//! let chat = alice.subscribe("chat")?;
//! let peer = bob.connect_wait(&format!("127.0.0.1:{}", alice.local_addr().port()), Duration::from_secs(5))?;
//! assert_eq!(peer, alice.public_key());
//! // A publish needs a peer that subscribes to the topic to go anywhere.
//! bob.wait_for_subscriber("chat", Duration::from_secs(5))?;
//! bob.publish("chat", b"hello")?;
//! let msg = chat.recv_timeout(Duration::from_secs(5)).ok_or("no message")?;
//! assert_eq!((msg.topic(), msg.data(), msg.from), ("chat", &b"hello"[..], bob.public_key()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The async API sits beside it and runs on any executor (`moss` depends on
//! no runtime): [`Subscription::into_stream`] gives a
//! [`futures_core::Stream`], [`Node::publish_async`] waits while the
//! engine's queue is full, [`Node::connect_async`] and
//! [`Node::wait_for_subscriber_async`] resolve without a thread of their
//! own (see [`SubscriptionStream`] for an example, and
//! `examples/async_chat.rs` for tokio).
//!
//! The pieces:
//! - [`NodeBuilder`] (from [`Node::builder`]): mesh id, PSK, [`Config`]
//!   (or its JSON, the `Moss_Init` format), a stored [`Identity`], bind address.
//! - [`Node`]: publish, subscribe ([`Subscription`], an iterator), connect,
//!   [`Node::stats`], [`Node::mesh_info`], [`Node::discovery_stats`], and
//!   host [`Event`]s ([`Node::events`]).
//! - [`Story`]: turns those events and stats into `info` logs that tell
//!   what the node is doing.
//! - Errors: [`StartError`] (starting) and [`NodeError`] (calls), both
//!   `std::error::Error`.

pub mod backend;
pub mod config;
mod discovery;
mod driver;
mod error;
mod event;
mod host;
mod io;
mod nat;
mod node;
mod portmap;
mod reactor;
mod report;
mod shard;
mod shared;
mod spin;
mod spray;
mod story;
mod stream;
pub mod tcp;
pub mod webrtc;

pub use error::{NodeError, StartError};
pub use event::{Event, Message, Payload};
pub use host::Snapshot;
pub use moss_discovery::DiscoveryStats;
pub use moss_mesh::{
    ChainLink, Config, ConfigError, DropReason, Identity, NetworkSnapshot, PeerId, Stats,
    TelemetryConfig,
};
pub use node::{MeshInfo, Node, NodeBuilder, NodeStats, PeerStat, Subscription};
pub use portmap::PortmapStatus;
pub use shard::{ShardError, ShardStat};
pub use shared::{SharedEngine, SharedEngineError};
pub use spray::SprayStats;
pub use story::{path_of, short_id, Story};
pub use stream::{Connect, Publish, SubscriptionStream, WaitForSubscriber};
pub use tcp::TcpStats;
pub use webrtc::{WebrtcError, WebrtcStats};

/// The top-level README's Rust example, run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
