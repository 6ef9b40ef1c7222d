//! The bounds a signal server enforces, with their defaults.

use std::time::Duration;

/// Every bound of a signal server. All are at least 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most rooms at once.
    pub max_rooms: usize,
    /// Most peers in one room.
    pub max_room_peers: usize,
    /// Most peers (connections that joined) over all rooms.
    pub max_peers: usize,
    /// Largest envelope, in bytes of its JSON text.
    pub max_envelope: usize,
    /// Envelopes per second a connection may send, on average.
    pub rate: f64,
    /// Envelopes a connection may send in one burst.
    pub burst: f64,
    /// Outbound queue length per peer; envelopes beyond it are dropped and counted.
    pub queue: usize,
    /// A connection silent this long (no message, no pong) is closed.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rooms: 1024,
            max_room_peers: 64,
            max_peers: 4096,
            max_envelope: moss_signal_envelope::bounds::MAX_ENVELOPE,
            rate: 20.0,
            burst: 40.0,
            queue: 64,
            idle: Duration::from_secs(60),
        }
    }
}

/// A limit that is zero, negative or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit {0} must be positive")]
pub struct LimitError(pub &'static str);

impl Limits {
    /// Checks that every bound is positive.
    pub fn validate(&self) -> Result<(), LimitError> {
        let counts = [
            ("max-rooms", self.max_rooms),
            ("max-room-peers", self.max_room_peers),
            ("max-peers", self.max_peers),
            ("max-envelope", self.max_envelope),
            ("queue", self.queue),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, v)| *v == 0) {
            return Err(LimitError(name));
        }
        for (name, v) in [("rate", self.rate), ("burst", self.burst)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(LimitError(name));
            }
        }
        if self.idle.is_zero() {
            return Err(LimitError("idle-sec"));
        }
        Ok(())
    }
}
