//! Plain values the router speaks in.

use crate::control::Control;
use moss_crypto::PeerId;
use std::net::SocketAddr;
use std::sync::Arc;

/// BLAKE2s-256 message id (see `moss_crypto::msgid`).
pub type MessageId = [u8; 32];

/// A topic name, cheap to clone.
pub type Topic = Arc<str>;

/// Something the host must do for the router.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a cached message: its body (as the host passed it to
    /// `publish`/`on_message`) is [`crate::Router::cached_body`].
    Send {
        /// Destination peer.
        to: PeerId,
        /// Message id.
        id: MessageId,
    },
    /// Send a control message.
    Control {
        /// Destination peer.
        to: PeerId,
        /// The message.
        control: Control,
    },
    /// Dial an address learnt by peer exchange.
    Dial(SocketAddr),
}
