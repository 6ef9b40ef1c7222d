//! Which DataChannel links carry a Noise session. A link on which no
//! session formed within a bound (a peer that knows the room, which is the
//! public infohash, but not the PSK; a peer of another protocol; one that
//! never dials), or whose session ended, is of no use to the node and
//! holds one of the endpoint's link slots: the engine closes it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// How often the node's sessions are compared with the open links.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Added to the node's handshake timeout: a dial retransmits message 1
/// until that timeout, so a session that can form has formed by then.
pub(crate) const SLACK: Duration = Duration::from_secs(2);

/// Why a link is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unused {
    /// No session formed on it within the bound.
    NoSession,
    /// Its session ended (closed, timed out, or moved to another path).
    SessionEnded,
}

#[derive(Debug)]
struct Watched {
    /// Node time the channel opened.
    opened: Duration,
    /// True once a session was seen on it.
    had_session: bool,
}

/// The open channels and what the node made of them.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    links: HashMap<u64, Watched>,
    next: Duration,
}

impl Watch {
    /// `channel` opened at node time `now`.
    pub fn opened(&mut self, channel: u64, now: Duration) {
        self.links.insert(
            channel,
            Watched {
                opened: now,
                had_session: false,
            },
        );
    }

    /// `channel` closed (by the peer, or because we closed it).
    pub fn closed(&mut self, channel: u64) {
        self.links.remove(&channel);
    }

    /// At most every [`CHECK_EVERY`]: the channels to close and why, given
    /// the channels that carry a session now (`sessions`, asked only when
    /// a check is due) and the bound for a session to form.
    pub fn check(
        &mut self,
        now: Duration,
        bound: Duration,
        sessions: impl FnOnce() -> HashSet<u64>,
    ) -> Vec<(u64, Unused)> {
        if self.links.is_empty() || now < self.next {
            return Vec::new();
        }
        self.next = now + CHECK_EVERY;
        let live = sessions();
        let mut close = Vec::new();
        for (&channel, w) in &mut self.links {
            if live.contains(&channel) {
                w.had_session = true;
            } else if w.had_session {
                close.push((channel, Unused::SessionEnded));
            } else if now.saturating_sub(w.opened) >= bound {
                close.push((channel, Unused::NoSession));
            }
        }
        for (channel, _) in &close {
            self.links.remove(channel);
        }
        close.sort_unstable_by_key(|(c, _)| *c);
        close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(7);

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_link_without_a_session_is_closed_after_the_bound_only() {
        let mut w = Watch::default();
        w.opened(1, s(0));
        w.opened(2, s(0));
        assert!(w.check(s(1), BOUND, || HashSet::from([2])).is_empty());
        assert!(w.check(s(6), BOUND, || HashSet::from([2])).is_empty());
        assert_eq!(
            w.check(s(7), BOUND, || HashSet::from([2])),
            vec![(1, Unused::NoSession)]
        );
        // Closed once: it is no longer watched.
        assert!(w.check(s(30), BOUND, || HashSet::from([2])).is_empty());
    }

    #[test]
    fn a_link_whose_session_ended_is_closed_at_once() {
        let mut w = Watch::default();
        w.opened(3, s(0));
        assert!(w.check(s(1), BOUND, || HashSet::from([3])).is_empty());
        assert_eq!(
            w.check(s(2), BOUND, HashSet::new),
            vec![(3, Unused::SessionEnded)]
        );
    }

    #[test]
    fn checks_are_spaced_and_closed_channels_forgotten() {
        let mut w = Watch::default();
        let mut asked = 0;
        assert!(w
            .check(s(0), BOUND, || {
                asked += 1;
                HashSet::new()
            })
            .is_empty());
        assert_eq!(asked, 0, "nothing watched: the node is not asked");
        w.opened(4, s(0));
        w.closed(4);
        w.opened(5, s(0));
        let at = s(10);
        assert_eq!(w.check(at, BOUND, HashSet::new).len(), 1);
        w.opened(6, s(0));
        assert!(
            w.check(at + Duration::from_millis(100), BOUND, HashSet::new)
                .is_empty(),
            "within CHECK_EVERY of the last check"
        );
        assert_eq!(
            w.check(at + CHECK_EVERY, BOUND, HashSet::new),
            vec![(6, Unused::NoSession)]
        );
    }
}
