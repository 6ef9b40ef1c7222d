//! The peers a signal room has named that this endpoint offers to (their
//! id is larger than ours), and when to offer again after a link to one
//! of them failed or closed while it stayed in the room.
//!
//! A link can fail for reasons that pass: an offer or answer lost with a
//! signal server's restart, ICE checks that found no pair before a NAT
//! mapping existed, a peer busy at its link limit. Without a retry the two
//! peers would meet again only if one of them left and rejoined the room.
//! Retries back off from [`RETRY_MIN`] to [`RETRY_MAX`] and stop after
//! [`MAX_ATTEMPTS`] failures in a row; a fresh `join` or `peers` listing
//! of the peer starts over, and `leave` forgets it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The wait before the first re-offer.
pub const RETRY_MIN: Duration = Duration::from_secs(2);

/// The longest wait between re-offers.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// Failed links in a row after which a peer is offered again only when the
/// room names it anew.
pub const MAX_ATTEMPTS: u32 = 8;

/// Most room members remembered (beyond it, new ones are offered once, as
/// before, and not retried).
pub const MAX_MEMBERS: usize = 1024;

/// One peer we offer to.
#[derive(Debug, Clone, Copy)]
struct Member {
    /// The signal server that named it last (offers go there).
    server: usize,
    /// Failed or closed links in a row.
    failures: u32,
    /// When to offer again; `None` while a link exists or retries ran out.
    due: Option<Instant>,
}

/// The members of the signal rooms this endpoint offers to.
#[derive(Debug, Default)]
pub(crate) struct Room {
    members: HashMap<String, Member>,
}

impl Room {
    /// The room named `id` (through `server`): remember it, and forget past
    /// failures. False when it cannot be remembered ([`MAX_MEMBERS`]).
    pub fn named(&mut self, id: &str, server: usize) -> bool {
        if let Some(m) = self.members.get_mut(id) {
            *m = Member {
                server,
                failures: 0,
                due: None,
            };
            return true;
        }
        if self.members.len() >= MAX_MEMBERS {
            return false;
        }
        self.members.insert(
            id.to_string(),
            Member {
                server,
                failures: 0,
                due: None,
            },
        );
        true
    }

    /// `id` left the room: no more offers to it.
    pub fn left(&mut self, id: &str) {
        self.members.remove(id);
    }

    /// Forgets every member (the endpoint is closing).
    pub fn clear(&mut self) {
        self.members.clear();
    }

    /// The link to `id` opened: its failure count starts over.
    pub fn opened(&mut self, id: &str) {
        if let Some(m) = self.members.get_mut(id) {
            m.failures = 0;
            m.due = None;
        }
    }

    /// The link to `id` is gone at `now`: schedule the next offer, with a
    /// backoff that doubles per failure in a row, until [`MAX_ATTEMPTS`].
    pub fn lost(&mut self, id: &str, now: Instant) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        m.failures = m.failures.saturating_add(1);
        m.due = (m.failures <= MAX_ATTEMPTS).then(|| now + backoff(m.failures));
    }

    /// The earliest scheduled re-offer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members.values().filter_map(|m| m.due).min()
    }

    /// The members due for a re-offer at `now`, as `(id, server)`, in id
    /// order (repeatable); each is unscheduled until its next loss.
    pub fn take_due(&mut self, now: Instant) -> Vec<(String, usize)> {
        let mut due: Vec<(String, usize)> = self
            .members
            .iter_mut()
            .filter(|(_, m)| m.due.is_some_and(|t| t <= now))
            .map(|(id, m)| {
                m.due = None;
                (id.clone(), m.server)
            })
            .collect();
        due.sort_unstable();
        due
    }
}

/// The wait after `failures` failed links in a row (1 or more).
fn backoff(failures: u32) -> Duration {
    let doubled = RETRY_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_retries_stop_after_max_attempts() {
        assert_eq!(backoff(1), RETRY_MIN);
        assert_eq!(backoff(2), RETRY_MIN * 2);
        assert_eq!(backoff(6), RETRY_MAX, "64 s is capped");
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
        let mut r = Room::default();
        let t = Instant::now();
        assert!(r.named("bb", 3));
        assert_eq!(r.poll_timeout(), None, "nothing failed yet");
        r.lost("bb", t);
        assert_eq!(r.poll_timeout(), Some(t + RETRY_MIN));
        assert!(r.take_due(t).is_empty(), "not due yet");
        assert_eq!(r.take_due(t + RETRY_MIN), vec![("bb".to_string(), 3)]);
        assert_eq!(r.poll_timeout(), None, "taken until the next loss");
        for _ in 1..MAX_ATTEMPTS {
            r.lost("bb", t);
        }
        assert!(r.poll_timeout().is_some(), "the last attempt is scheduled");
        r.lost("bb", t);
        assert_eq!(r.poll_timeout(), None, "attempts ran out");
        assert!(r.named("bb", 0), "named again");
        r.lost("bb", t);
        assert_eq!(r.poll_timeout(), Some(t + RETRY_MIN), "starts over");
    }

    #[test]
    fn left_opened_and_unknown_members() {
        let mut r = Room::default();
        let t = Instant::now();
        r.lost("zz", t);
        assert_eq!(r.poll_timeout(), None, "never named: never retried");
        r.named("bb", 0);
        r.lost("bb", t);
        r.lost("bb", t);
        r.opened("bb");
        r.lost("bb", t);
        assert_eq!(r.poll_timeout(), Some(t + RETRY_MIN), "opened reset it");
        r.left("bb");
        assert_eq!(r.poll_timeout(), None);
        for i in 0..MAX_MEMBERS {
            assert!(r.named(&format!("p{i}"), 0));
        }
        assert!(!r.named("one-too-many", 0));
        assert!(r.named("p0", 1), "a known member is still renamed");
        r.clear();
        assert!(r.named("one-too-many", 0));
    }
}
