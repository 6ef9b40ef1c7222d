//! moss-signal-envelope: the signaling envelope, JSON `{type, from, to,
//! data}` as the original relay speaks it, and every bound on it, in one
//! place. [`relay`] is the server's half (decode what a client sends,
//! encode what the server sends: `moss-signal`), [`peer`] the peer's half
//! (decode what a server sends, encode offers and answers: `moss-webrtc`).
//! The browser peer (`wasm/peer/js/signal.js`) speaks the same envelopes.

pub mod bounds;
pub mod peer;
pub mod relay;
