//! Moss: the embeddable peer-to-peer mesh runtime (I/O engine and public Rust API).
//!
//! ```no_run
//! let node = moss::Node::builder("local").start()?;
//! let chat = node.subscribe("chat")?;
//! node.connect("127.0.0.1:41001")?;
//! # std::thread::sleep(std::time::Duration::from_secs(1));
//! node.publish("chat", b"hello")?;
//! for msg in chat.take(1) {
//!     println!("{} says {:?}", msg.from, msg.data);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod backend;
mod discovery;
mod driver;
mod error;
mod event;
mod host;
mod io;
mod node;
mod report;
mod shard;

pub use error::{NodeError, StartError};
pub use event::{Event, Message, Payload};
pub use host::Snapshot;
pub use moss_discovery::DiscoveryStats;
pub use moss_mesh::{
    ChainLink, Config, ConfigError, DropReason, Identity, NetworkSnapshot, PeerId, Stats,
    TelemetryConfig,
};
pub use node::{MeshInfo, Node, NodeBuilder, NodeStats, PeerStat, Subscription};
pub use shard::{ShardError, ShardStat};
