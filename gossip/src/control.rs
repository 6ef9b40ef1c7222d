//! GossipSub control messages as plain Rust values (the mesh crate owns
//! their wire encoding).

use crate::types::{MessageId, Topic};
use moss_crypto::PeerId;
use std::net::SocketAddr;

/// A peer offered by peer exchange in a PRUNE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PxPeer {
    /// Its identity.
    pub peer: PeerId,
    /// Where the pruning peer reaches it.
    pub addr: SocketAddr,
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The sender added us to its mesh for `topic`.
    Graft {
        /// Topic.
        topic: Topic,
    },
    /// The sender removed us from its mesh for `topic`.
    Prune {
        /// Topic.
        topic: Topic,
        /// Seconds before we may graft again.
        backoff_secs: u32,
        /// Other peers of the topic we may dial.
        px: Vec<PxPeer>,
    },
    /// The sender has these recent messages of `topic`.
    IHave {
        /// Topic.
        topic: Topic,
        /// Message ids.
        ids: Vec<MessageId>,
    },
    /// The sender asks for these messages.
    IWant {
        /// Message ids.
        ids: Vec<MessageId>,
    },
    /// The sender already has these (large) messages; do not send them.
    IDontWant {
        /// Message ids.
        ids: Vec<MessageId>,
    },
}
