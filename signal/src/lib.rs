//! moss-signal: a bounded WebSocket relay that brokers WebRTC signaling
//! (SDP offers and answers, ICE candidates) between Moss peers in a room.
//! It never sees mesh traffic. [`hub`] is the sans-IO core; [`server`] the
//! thin axum driver.

pub mod background;
pub mod close;
pub mod demo;
pub mod envelope;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod options;
pub mod server;

// The gateway's bounded HTTP accept loop, shared as one file until the two
// binaries get a common HTTP crate.
#[path = "../../gateway/src/serve.rs"]
pub mod serve;

// The gateway's Go-style flag parser, shared the same way.
#[allow(dead_code)]
#[path = "../../gateway/src/flags.rs"]
pub mod flags;
