//! Hints: small unauthenticated datagrams that make the other side
//! handshake again, sooner than its timers would.
//!
//! * [`HintReason::UnknownSession`]: data arrived for an index we do not
//!   hold (we restarted, or forgot the session). The sender of the data,
//!   if it holds a session with that index on the path, re-handshakes.
//! * [`HintReason::IkRefused`]: an IK message 1 did not decrypt (our static
//!   key is not the one the initiator holds). The initiator falls back to
//!   XX at once instead of after a timeout.
//!
//! A hint is 32 bytes, the size of the smallest datagram, so it is never
//! larger than what prompted it, and a node sends at most one per path per
//! [`HINT_INTERVAL`] (and [`HINT_RATE`] per second in all): spoofed input
//! cannot turn it into an amplifier. A forged hint costs its target at most
//! one handshake per [`PROBE_INTERVAL`] and never ends a session.

use crate::path::Path;
use crate::wire::WireError;
use crate::Time;
use std::collections::HashMap;
use std::time::Duration;

/// Body bytes of a hint (the head's sample: the whole body).
pub const HINT_BODY: usize = 16;
/// Shortest gap between two hints to one path.
pub const HINT_INTERVAL: Duration = Duration::from_millis(500);
/// Hints a node sends in a burst.
pub const HINT_BURST: u32 = 64;
/// Hints a node sends per second, sustained.
pub const HINT_RATE: u32 = 256;
/// Shortest gap between two re-handshakes a node starts to one path
/// because of hints or silence.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Paths a per-path rate limit remembers (and static keys a node keeps
/// for IK). A full rate limit forgets the entries past their interval; if
/// none is, it refuses (bounded state before a perfect limit).
pub const RATE_MAP_CAP: usize = 4096;

/// What a hint says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintReason {
    /// The index (the receiver index of the data that prompted the hint)
    /// is unknown here.
    UnknownSession = 0,
    /// The IK message 1 with this sender index could not be read.
    IkRefused = 1,
}

/// A decoded hint body: `reason (u8) ‖ index (u32 LE) ‖ 11 random bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// What the hint says.
    pub reason: HintReason,
    /// The index it is about: the receiver index of the data datagram
    /// (`UnknownSession`), the sender index of IK message 1 (`IkRefused`).
    pub index: u32,
}

impl Hint {
    /// The body, with `fill` as its 11 trailing (random) bytes.
    pub fn encode(&self, fill: [u8; 11]) -> [u8; HINT_BODY] {
        let mut b = [0u8; HINT_BODY];
        b[0] = self.reason as u8;
        b[1..5].copy_from_slice(&self.index.to_le_bytes());
        b[5..].copy_from_slice(&fill);
        b
    }

    /// Decodes an (unscrambled) body; `pad_len` must be 0.
    pub fn decode(body: &[u8], pad_len: u16) -> Result<Self, WireError> {
        if pad_len != 0 || body.len() != HINT_BODY {
            return Err(WireError::BadLength);
        }
        let reason = match body[0] {
            0 => HintReason::UnknownSession,
            1 => HintReason::IkRefused,
            _ => return Err(WireError::Reserved),
        };
        let index = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
        if index == 0 {
            return Err(WireError::Reserved);
        }
        Ok(Self { reason, index })
    }
}

/// When something was last done per path, bounded to [`RATE_MAP_CAP`]
/// paths: "at most once per interval per path" without unbounded state.
#[derive(Default)]
pub(crate) struct RateMap {
    last: HashMap<Path, Time>,
}

impl RateMap {
    /// True (and noted) if nothing was done for `path` within `interval`
    /// before `now`.
    pub fn allow(&mut self, path: Path, now: Time, interval: Duration) -> bool {
        if let Some(&t) = self.last.get(&path) {
            if now.saturating_sub(t) < interval {
                return false;
            }
        }
        if self.last.len() >= RATE_MAP_CAP {
            self.last.retain(|_, t| now.saturating_sub(*t) < interval);
            if self.last.len() >= RATE_MAP_CAP {
                return false;
            }
        }
        self.last.insert(path, now);
        true
    }

    /// Forgets entries older than `interval`.
    pub fn expire(&mut self, now: Time, interval: Duration) {
        self.last.retain(|_, t| now.saturating_sub(*t) < interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_round_trips_and_rejects_garbage() {
        for reason in [HintReason::UnknownSession, HintReason::IkRefused] {
            let h = Hint { reason, index: 7 };
            assert_eq!(Hint::decode(&h.encode([9; 11]), 0), Ok(h));
        }
        let ok = Hint {
            reason: HintReason::IkRefused,
            index: 7,
        }
        .encode([0; 11]);
        assert!(Hint::decode(&ok, 1).is_err());
        assert!(Hint::decode(&ok[..15], 0).is_err());
        let mut bad = ok;
        bad[0] = 2;
        assert!(Hint::decode(&bad, 0).is_err());
        let zero = Hint {
            reason: HintReason::UnknownSession,
            index: 0,
        }
        .encode([0; 11]);
        assert!(Hint::decode(&zero, 0).is_err());
    }

    #[test]
    fn rate_map_allows_once_per_interval() {
        let mut m = RateMap::default();
        let p = Path::Udp("127.0.0.1:1".parse().unwrap());
        let i = Duration::from_millis(500);
        assert!(m.allow(p, Duration::ZERO, i));
        assert!(!m.allow(p, Duration::from_millis(499), i));
        assert!(m.allow(p, Duration::from_millis(500), i));
        m.expire(Duration::from_secs(5), i);
        assert!(m.last.is_empty());
    }
}
