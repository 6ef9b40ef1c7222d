//! The recent host events of a served mesh (peer joins and leaves,
//! supernode promotion and revocation, relay migrations, tracker results),
//! bounded, numbered, for `/api/events`.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Events kept per mesh; older ones are forgotten.
pub const KEPT: usize = 256;

/// One recorded event: its number in this mesh, the C ABI event id and the
/// detail document the event callback gets.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    /// 1, 2, … in the order the node reported them.
    pub seq: u64,
    /// The C ABI event id (3 supernode promoted, 4 revoked, 7 relay
    /// migrated, …).
    pub id: i32,
    /// The event's detail JSON.
    pub detail: serde_json::Value,
}

/// A mesh's recent events.
#[derive(Debug, Default)]
pub struct EventLog {
    inner: Mutex<(u64, VecDeque<Entry>)>,
}

impl EventLog {
    /// Records one event.
    pub fn push(&self, e: &moss::Event) {
        let detail = serde_json::from_str(&e.detail_json()).unwrap_or(serde_json::Value::Null);
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        g.0 += 1;
        let seq = g.0;
        if g.1.len() == KEPT {
            g.1.pop_front();
        }
        g.1.push_back(Entry {
            seq,
            id: e.id(),
            detail,
        });
    }

    /// The events numbered above `seq`, oldest first.
    pub fn since(&self, seq: u64) -> Vec<Entry> {
        self.inner
            .lock()
            .map(|g| g.1.iter().filter(|e| e.seq > seq).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_numbers_them() {
        let log = EventLog::default();
        for _ in 0..KEPT + 3 {
            log.push(&moss::Event::SupernodePromoted);
        }
        log.push(&moss::Event::SupernodeRevoked {
            reason: "shutdown".into(),
        });
        let all = log.since(0);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].seq, 5);
        let last = log.since(KEPT as u64 + 3);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].id, 4);
        assert_eq!(last[0].detail["reason"], "shutdown");
    }
}
