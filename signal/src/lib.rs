//! moss-signal: a bounded WebSocket relay that brokers WebRTC signaling
//! (SDP offers and answers, ICE candidates) between Moss peers in a room.
//! It never sees mesh traffic. [`hub`] is the sans-IO core; [`server`] the
//! thin axum driver.

pub mod background;
pub mod close;
pub mod demo;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod options;
pub mod server;

use moss_service::{flags, serve};

/// The relay's half of the signaling envelope (shared with `moss-webrtc`).
pub use moss_signal_envelope::relay as envelope;
