//! What the node tells its driver and application.

use moss_crypto::PeerId;
use std::net::SocketAddr;

/// A pub/sub message delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic it was published on.
    pub topic: String,
    /// Peer id of the publisher.
    pub from: PeerId,
    /// Application bytes.
    pub data: Vec<u8>,
    /// BLAKE2s message id.
    pub id: [u8; 32],
    /// Links the message travelled to reach us (1 = straight from the origin).
    pub hops: u8,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Nothing was received for the idle timeout.
    Timeout,
    /// The peer sent a close frame.
    Closed,
    /// We are shutting down.
    Shutdown,
}

impl DisconnectReason {
    /// Snake-case name for JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Something the application or driver should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A session with a new peer is established.
    PeerConnected {
        /// The peer's authenticated identity.
        peer: PeerId,
        /// Its address.
        addr: SocketAddr,
    },
    /// The last session with a peer ended.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
        /// Its last address.
        addr: SocketAddr,
        /// Why.
        reason: DisconnectReason,
    },
    /// A dial we started did not produce a session.
    ConnectFailed {
        /// Where we dialled.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// A message on a subscribed topic.
    Message(Message),
}
