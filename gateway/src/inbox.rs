//! Recent messages of the topics the operator subscribed with `-subscribe`.

use moss::{Message, Node};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Messages kept per topic.
pub const KEEP: usize = 64;

/// One received message as `/api/messages` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Topic.
    pub topic: String,
    /// Publisher peer id, hex.
    pub from: String,
    /// Payload as text when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Payload, hex.
    pub data_hex: String,
    /// Message id, hex.
    pub id: String,
    /// Unix time of receipt, milliseconds.
    pub received_ms: u64,
}

/// Bounded per-topic message history.
#[derive(Default)]
pub struct Inbox {
    topics: Mutex<HashMap<String, VecDeque<Entry>>>,
}

impl Inbox {
    /// Joins `topics` on `node`; the gateway's one host thread
    /// ([`crate::story::Host`]) then [`Inbox::record`]s their messages.
    pub fn start(node: &Node, topics: &[String]) -> Arc<Self> {
        let inbox = Arc::new(Self::default());
        let mut map = inbox.lock();
        for t in topics {
            match node.join(t) {
                Ok(()) => {
                    map.entry(t.clone()).or_default();
                }
                Err(e) => tracing::warn!(topic = %t, error = %e, "cannot subscribe"),
            }
        }
        drop(map);
        inbox
    }

    /// True if any topic is subscribed (its node's messages are collected).
    pub fn collects(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Keeps one received message (the oldest of its topic goes when
    /// [`KEEP`] are held).
    pub fn record(&self, m: &Message) {
        let received_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let e = Entry {
            from: m.from.to_hex(),
            text: std::str::from_utf8(m.data()).ok().map(str::to_owned),
            data_hex: hex::encode(&m.data),
            id: hex::encode(m.id),
            topic: m.topic().to_owned(),
            received_ms,
        };
        let mut map = self.lock();
        let q = map.entry(e.topic.clone()).or_default();
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(e);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Entry>>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages of one topic (oldest first), or `None` if not subscribed.
    pub fn topic(&self, topic: &str) -> Option<Vec<Entry>> {
        self.lock().get(topic).map(|q| q.iter().cloned().collect())
    }

    /// Subscribed topic names.
    pub fn topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().keys().cloned().collect();
        v.sort();
        v
    }
}
