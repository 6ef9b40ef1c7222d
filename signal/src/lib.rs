//! moss-signal: a bounded WebSocket relay that brokers WebRTC signaling
//! (SDP offers and answers, ICE candidates) between Moss peers in a room.
//! It never sees mesh traffic. [`hub`] is the sans-IO core; [`server`] the
//! thin axum driver.
//!
//! The default feature `server` builds the WebSocket server (modules
//! `server`, `background`, `demo`, `options`) and the binary; without it
//! the crate is the sans-IO core alone, with no axum or tokio.

#[cfg(feature = "server")]
pub mod background;
pub mod close;
#[cfg(feature = "server")]
pub mod demo;
pub mod hub;
pub mod limits;
pub mod metrics;
#[cfg(feature = "server")]
pub mod options;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
use moss_service::{flags, serve};

/// The relay's half of the signaling envelope (shared with `moss-webrtc`).
pub use moss_signal_envelope::relay as envelope;
