//! Moss in the browser: the sans-IO [`moss_mesh::Node`] compiled to
//! WebAssembly and exported to JavaScript as [`MossNode`]. The page's
//! JavaScript (`js/moss.js`) owns the `RTCPeerConnection`s, ICE and the
//! signaling; each DataChannel is one [`moss_mesh::Path::Channel`] of the
//! node: its datagrams go in through [`MossNode::datagram`] and come out of
//! [`MossNode::poll_transmit`]. Time comes from `performance.now()`,
//! randomness from `crypto.getRandomValues`, and the one timer the page
//! keeps is [`MossNode::next_timeout_ms`].

pub mod clock;
pub mod error;
pub mod event;
pub mod peer;

pub use error::{MossError, PeerError};
pub use event::MossEvent;
pub use peer::MossNode;
