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
//!
//! ```
//! use moss_crypto::PeerId;
//! use moss_gossip::{Action, Config, Router};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//! use std::time::Duration;
//!
//! let mut rng = ChaCha20Rng::from_seed([1; 32]);
//! let mut router = Router::new(Config::default(), Duration::from_secs(1));
//! // A connected peer that subscribed to "chat"; we join "chat" too.
//! let peer = PeerId([7; 32]);
//! router.add_peer(peer, "10.0.0.7:4000".parse()?, true);
//! router.peer_subscribed(&peer, "chat");
//! router.join("chat", Duration::ZERO, &mut rng);
//! // Publish a message (the host computes the id and encodes the body).
//! let id = [9; 32];
//! router.publish(Duration::ZERO, id, "chat", b"body bytes", &mut rng)?;
//! // The router asks its host to send the cached body to the peer.
//! let mut sent = Vec::new();
//! while let Some(action) = router.poll_action() {
//!     if let Action::Send { to, id } = action {
//!         sent.push((to, router.cached_body(&id).map(<[u8]>::to_vec)));
//!     }
//! }
//! assert_eq!(sent, vec![(peer, Some(b"body bytes".to_vec()))]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod control;
mod heartbeat;
mod join_graft;
pub mod mcache;
mod router;
pub mod score;
pub mod seen;
mod small;
pub mod types;

pub use config::{Config, ConfigBuilder, ConfigError};
pub use control::{Control, PxPeer};
pub use heartbeat::GRAFT_CATCH_UP;
pub use router::{
    peer_record_sizes, AppScoreFn, PublishError, Received, Router, LATE_BEATS, MAX_BACKOFF,
    MAX_LATE, MAX_PEER_TOPICS,
};
pub use score::{ScoreParams, Thresholds, TopicParams};
pub use types::{Action, MessageId, Topic};

/// Time since an origin the host picks (the mesh node's `Time`).
pub type Time = std::time::Duration;
