//! The message cache: recent messages by heartbeat window, served on IWANT
//! and advertised by IHAVE; bounded in windows and in bytes.

use crate::types::{MessageId, Topic};
use moss_crypto::PeerId;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One cached message.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its topic.
    pub topic: Topic,
    /// The host's encoded body.
    pub body: Arc<[u8]>,
    /// How often each peer was sent it on IWANT.
    iwant: Vec<(PeerId, u32)>,
    /// Peers known to have it (sent it to us, announced it, or said
    /// IDONTWANT).
    have: Vec<PeerId>,
}

/// Most peers remembered per message as having it.
const MAX_HAVE: usize = 32;

/// Windows of message ids, newest first.
#[derive(Debug)]
pub struct MessageCache {
    msgs: HashMap<MessageId, Entry>,
    windows: VecDeque<Vec<MessageId>>,
    len: usize,
    gossip: usize,
    bytes: usize,
    max_bytes: usize,
}

impl MessageCache {
    /// A cache of `len` windows advertising the newest `gossip`, holding at
    /// most `max_bytes` of bodies.
    pub fn new(len: usize, gossip: usize, max_bytes: usize) -> Self {
        let mut windows = VecDeque::with_capacity(len.max(1));
        windows.push_back(Vec::new());
        Self {
            msgs: HashMap::new(),
            windows,
            len: len.max(1),
            gossip,
            bytes: 0,
            max_bytes,
        }
    }

    /// Adds a message to the newest window; false if already cached.
    pub fn put(&mut self, id: MessageId, topic: Topic, body: Arc<[u8]>) -> bool {
        if self.msgs.contains_key(&id) {
            return false;
        }
        self.bytes += body.len();
        self.msgs.insert(
            id,
            Entry {
                topic,
                body,
                iwant: Vec::new(),
                have: Vec::new(),
            },
        );
        if let Some(w) = self.windows.front_mut() {
            w.push(id);
        }
        while self.bytes > self.max_bytes && self.evict_oldest() {}
        true
    }

    fn evict_oldest(&mut self) -> bool {
        for w in self.windows.iter_mut().rev() {
            if !w.is_empty() {
                let id = w.remove(0);
                if let Some(e) = self.msgs.remove(&id) {
                    self.bytes -= e.body.len();
                }
                return true;
            }
        }
        false
    }

    /// A cached message.
    pub fn get(&self, id: &MessageId) -> Option<&Entry> {
        self.msgs.get(id)
    }

    /// The message for an IWANT from `peer`, unless it was already sent to
    /// that peer `limit` times.
    pub fn get_for_iwant(&mut self, id: &MessageId, peer: PeerId, limit: u32) -> Option<Arc<[u8]>> {
        let e = self.msgs.get_mut(id)?;
        match e.iwant.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, n)) if *n >= limit => return None,
            Some((_, n)) => *n += 1,
            None => e.iwant.push((peer, 1)),
        }
        Some(e.body.clone())
    }

    /// Records that `peer` has message `id`.
    pub fn mark_has(&mut self, id: &MessageId, peer: PeerId) {
        if let Some(e) = self.msgs.get_mut(id) {
            if e.have.len() < MAX_HAVE && !e.have.contains(&peer) {
                e.have.push(peer);
            }
        }
    }

    /// True when `peer` is known to have message `id`.
    pub fn peer_has(&self, id: &MessageId, peer: &PeerId) -> bool {
        self.msgs.get(id).is_some_and(|e| e.have.contains(peer))
    }

    /// Ids of `topic` in the gossip windows.
    pub fn gossip_ids(&self, topic: &str) -> Vec<MessageId> {
        self.windows
            .iter()
            .take(self.gossip)
            .flatten()
            .filter(|id| self.msgs.get(*id).is_some_and(|e| &*e.topic == topic))
            .copied()
            .collect()
    }

    /// Starts a new window, dropping the oldest beyond the history length.
    pub fn shift(&mut self) {
        if self.windows.len() >= self.len {
            if let Some(old) = self.windows.pop_back() {
                for id in old {
                    if let Some(e) = self.msgs.remove(&id) {
                        self.bytes -= e.body.len();
                    }
                }
            }
        }
        self.windows.push_front(Vec::new());
    }

    /// Messages cached.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Body bytes cached.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Arc<[u8]> {
        vec![0u8; n].into()
    }

    #[test]
    fn windows_gossip_and_expire() {
        let mut c = MessageCache::new(3, 2, 1 << 20);
        let t: Topic = "a".into();
        assert!(c.put([1; 32], t.clone(), body(10)));
        assert!(!c.put([1; 32], t.clone(), body(10)));
        c.put([2; 32], "b".into(), body(10));
        assert_eq!(c.gossip_ids("a"), vec![[1; 32]]);
        c.shift();
        c.shift();
        assert!(
            c.gossip_ids("a").is_empty(),
            "older than the gossip windows"
        );
        assert!(c.get(&[1; 32]).is_some(), "still served on IWANT");
        c.shift();
        assert!(c.get(&[1; 32]).is_none());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn byte_bound_and_iwant_limit() {
        let mut c = MessageCache::new(10, 3, 100);
        for i in 0..5u8 {
            c.put([i; 32], "a".into(), body(40));
        }
        assert!(c.bytes() <= 100);
        assert_eq!(c.len(), 2);
        let p = PeerId([9; 32]);
        assert!(c.get_for_iwant(&[4; 32], p, 2).is_some());
        assert!(c.get_for_iwant(&[4; 32], p, 2).is_some());
        assert!(c.get_for_iwant(&[4; 32], p, 2).is_none());
    }
}
