//! Time- and size-bounded set of message ids (the "seen cache").

use crate::types::MessageId;
use crate::Time;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// Remembers ids for a TTL, and never more than a capacity.
#[derive(Debug)]
pub struct SeenCache {
    ids: HashSet<MessageId>,
    order: VecDeque<(MessageId, Time)>,
    ttl: Duration,
    capacity: usize,
}

impl SeenCache {
    /// An empty cache.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// True if `id` is remembered.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains(id)
    }

    /// Inserts `id`; false if it was already present.
    pub fn insert(&mut self, id: MessageId, now: Time) -> bool {
        if self.ids.contains(&id) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some((old, _)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id);
        self.order.push_back((id, now));
        true
    }

    /// Forgets ids older than the TTL.
    pub fn expire(&mut self, now: Time) {
        while let Some(&(id, t)) = self.order.front() {
            if now.saturating_sub(t) < self.ttl {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&id);
        }
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedups_expires_and_stays_bounded() {
        let ttl = Duration::from_secs(10);
        let mut c = SeenCache::new(ttl, 3);
        assert!(c.insert([1; 32], Duration::ZERO));
        assert!(!c.insert([1; 32], Duration::from_secs(1)));
        c.expire(ttl);
        assert!(c.is_empty());
        for i in 0..10u8 {
            c.insert([i; 32], ttl);
        }
        assert_eq!(c.len(), 3);
        assert!(c.contains(&[9; 32]) && !c.contains(&[0; 32]));
    }
}
