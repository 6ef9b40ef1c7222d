//! Punching while relayed: a peer this node reaches only through a
//! supernode is still punched to, since a pair the relay's own direct
//! probes cannot open (a symmetric end: its port toward the supernode is
//! not the one it uses toward the peer) may still be punched, by the
//! birthday spray. The relay's supernode is connected to both ends over
//! UDP, so it is the one asked for the introduction (PUNCH_REQUEST): the
//! first time [`PUNCH_RETRY`] after the relayed session came up (or after
//! the last punch toward the peer, if later), then after waits that double
//! from twice that, up to
//! [`RELAYED_BACKOFF_MAX`], and at most [`RELAYED_PUNCH_MAX`] times per
//! peer, so a pair that keeps failing (both symmetric, or a spray that
//! never lands) stops asking. A punch that gets through makes a direct
//! session, which takes over from the relayed one (event 7 at both ends).

use super::punch::PUNCH_RETRY;
use super::MAX_PEER_NOTES;
use crate::node::Node;
use crate::path::Path;
use crate::Time;
use moss_crypto::PeerId;
use std::time::Duration;

/// Punch requests a node sends for one relayed peer at most.
pub const RELAYED_PUNCH_MAX: u32 = 6;
/// Longest wait between two punch requests for a relayed peer.
pub const RELAYED_BACKOFF_MAX: Duration = Duration::from_secs(480);
/// How often the relayed peers are looked at.
const RELAYED_SCAN: Duration = Duration::from_secs(1);

/// The punch requests asked for one relayed peer so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayedPunch {
    /// Requests sent.
    asked: u32,
    /// When the next one is due.
    next: Time,
}

/// The wait after the `asked`-th request: [`PUNCH_RETRY`] doubled `asked`
/// times, at most [`RELAYED_BACKOFF_MAX`].
pub(crate) fn relayed_backoff(asked: u32) -> Duration {
    PUNCH_RETRY
        .saturating_mul(1u32 << asked.min(16))
        .min(RELAYED_BACKOFF_MAX)
}

impl Node {
    /// Whether our session with `peer` is on a direct path (UDP, or a
    /// channel such as a spray socket), not through a supernode.
    pub(crate) fn reached_directly(&self, peer: &PeerId) -> bool {
        self.table
            .by_peer(peer)
            .and_then(|i| self.table.get(i))
            .is_some_and(|s| !matches!(s.path, Path::Relay { .. }))
    }

    /// Punch requests sent so far for relayed peer `peer` (0: none, or it
    /// is not relayed).
    pub fn relayed_punch_requests(&self, peer: &PeerId) -> u32 {
        self.nat.relayed_punch.get(peer).map_or(0, |r| r.asked)
    }

    /// Once a second: each relayed peer due for a punch (no punch running,
    /// its back-off over, the cap not reached) is asked of its relay's
    /// supernode. Peers reached directly again are forgotten.
    pub(crate) fn nat_relayed_tick(&mut self, now: Time) {
        if now < self.nat.relayed_scan || self.nat.local.is_empty() {
            return;
        }
        self.nat.relayed_scan = now + RELAYED_SCAN;
        let mut notes = std::mem::take(&mut self.nat.relayed_punch);
        notes.retain(|p, _| !self.reached_directly(p));
        self.nat.relayed_punch = notes;
        let mut relayed: Vec<(PeerId, PeerId)> = Vec::new();
        for (&peer, &idx) in &self.table.by_peer {
            if let Some(Path::Relay { via, .. }) = self.table.get(idx).map(|s| s.path) {
                relayed.push((peer, via));
            }
        }
        relayed.sort_unstable();
        for (peer, via) in relayed {
            if self.nat.punch_runs.contains_key(&peer) {
                continue;
            }
            let last = self.nat.punch.get(&peer).map(|p| p.0);
            if self.nat.relayed_punch.len() >= MAX_PEER_NOTES
                && !self.nat.relayed_punch.contains_key(&peer)
            {
                self.nat.relayed_punch.clear();
            }
            let r = *self
                .nat
                .relayed_punch
                .entry(peer)
                .or_insert_with(|| RelayedPunch {
                    asked: 0,
                    next: last.map_or(now, |t| t.max(now)) + PUNCH_RETRY,
                });
            if r.asked >= RELAYED_PUNCH_MAX || now < r.next {
                continue;
            }
            let Some(idx) = self.table.by_peer(&via).filter(|&i| self.nat_capable(i)) else {
                continue;
            };
            let asked = r.asked + 1;
            let next = now + relayed_backoff(asked);
            self.nat
                .relayed_punch
                .insert(peer, RelayedPunch { asked, next });
            self.stats.nat.relayed_punch_requests += 1;
            self.nat_ask_punch(idx, peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_from_twice_the_retry_up_to_its_ceiling() {
        let waits: Vec<u64> = (1..=RELAYED_PUNCH_MAX)
            .map(|n| relayed_backoff(n).as_secs())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 480]);
        assert_eq!(relayed_backoff(u32::MAX), RELAYED_BACKOFF_MAX);
    }
}
