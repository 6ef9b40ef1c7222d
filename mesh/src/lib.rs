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
//!
//! Two nodes wired together in memory: one dials the other, both join
//! "chat", and a message goes across.
//!
//! ```
//! use moss_mesh::{Config, Event, Identity, Node};
//! use std::net::SocketAddr;
//! use std::time::Duration;
//!
//! let addrs: [SocketAddr; 2] = ["127.0.0.1:4000".parse()?, "127.0.0.1:4001".parse()?];
//! let mut nodes = (0..2u8)
//!     .map(|i| {
//!         let id = Identity::from_seed([i + 1; 32]);
//!         Node::new(Config::default(), id, "local", None, [i; 32], Duration::ZERO)
//!     })
//!     .collect::<Result<Vec<Node>, _>>()?;
//! nodes[1].add_static_peer(addrs[0]);
//! for n in &mut nodes {
//!     n.subscribe("chat");
//! }
//! // The driver's loop: deliver datagrams, advance time (bounded).
//! let mut now = Duration::ZERO;
//! let mut got = None;
//! for step in 0..400 {
//!     for i in 0..2 {
//!         nodes[i].handle_timeout(now);
//!         while let Some(t) = nodes[i].poll_transmit() {
//!             let mut bytes = t.bytes;
//!             if let Some(j) = addrs.iter().position(|a| t.to == *a) {
//!                 nodes[j].handle_datagram(now, addrs[i], &mut bytes);
//!             }
//!         }
//!         while let Some(e) = nodes[i].poll_event() {
//!             if let Event::Message(m) = e {
//!                 got = Some((i, m.topic().to_string(), m.data().to_vec()));
//!             }
//!         }
//!     }
//!     if step == 200 {
//!         nodes[0].publish(now, "chat", b"hello")?;
//!     }
//!     now += Duration::from_millis(10);
//! }
//! assert_eq!(got, Some((1, "chat".to_string(), b"hello".to_vec())));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod cookie;
pub mod event;
mod handshake;
pub mod hint;
mod input;
pub mod liveness;
pub mod nat;
mod node;
pub mod path;
pub mod preverify;
pub mod pubsub;
pub mod reach;
mod receive;
pub mod relay;
mod session;
pub mod shard;
pub mod stats;
mod table;
mod telemetry;
mod transport;
pub mod wire;

pub use config::{Config, ConfigError};
pub use event::{DisconnectReason, Event, Message, Payload};
pub use handshake::{IK_FALLBACK, RETIRE_GRACE};
pub use input::Input;
pub use moss_crypto::{Identity, PeerId};
pub use moss_telemetry::NatType;
pub use moss_telemetry::{ChainLink, Snapshot as NetworkSnapshot, TelemetryConfig};
pub use node::{DetachError, Node, PeerInfo, IDLE_TIMEOUT, KEEPALIVE, TICK};
pub use path::Path;
pub use preverify::{preverify, VerifiedFilter};
pub use pubsub::PublishError;
pub use reach::{Confirmation, Reachability};
pub use session::record_sizes;
pub use shard::{Inbound, SessionShard, TransportOp};
pub use stats::{DropReason, Drops, Stats};
pub use telemetry::TELEMETRY_TOPIC;
pub use transport::Transmit;

/// Monotonic time since an origin the driver picks.
pub type Time = std::time::Duration;
