//! The protocol's liveness rules, one set for sessions and the router
//! (`docs/PROTOCOL.md`, "Liveness"): every established session hears from
//! its peer at least every [`KEEPALIVE`]; silence of [`SILENCE`] (three
//! keepalives) makes the peer suspect (it leaves our gossip meshes and the
//! session is probed with a fresh handshake); silence of [`IDLE_TIMEOUT`]
//! (five keepalives) ends the session.

use std::time::Duration;

/// An established session with no output for this long gets a keepalive
/// (an empty data datagram).
pub const KEEPALIVE: Duration = Duration::from_secs(2);
/// A peer silent this long leaves our meshes (PRUNE with backoff) and its
/// session gets a re-handshake probe: three keepalives lost.
pub const SILENCE: Duration = Duration::from_secs(6);
/// A session with no authenticated input for this long is dropped: five
/// keepalives lost.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_ordered() {
        assert_eq!(SILENCE, KEEPALIVE * 3);
        assert_eq!(IDLE_TIMEOUT, KEEPALIVE * 5);
        assert!(crate::handshake::RETIRE_GRACE < IDLE_TIMEOUT);
    }
}
