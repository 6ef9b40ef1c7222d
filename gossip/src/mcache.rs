//! The message cache: recent messages by heartbeat window, served on IWANT
//! and advertised by IHAVE; bounded in windows and in bytes.
//!
//! Bodies are stored in one byte arena per window, not one allocation per
//! message: a window's arena and id list keep their capacity when the
//! window is recycled, so a node at a steady message rate caches without
//! allocating. Evictions by the byte bound go oldest first, so the dead
//! bytes of a window are always a prefix of its arena, which is compacted
//! when it reaches half of it.

use crate::small::PeerSet;
use crate::types::{MessageId, Topic};
use moss_crypto::PeerId;
use std::collections::{HashMap, VecDeque};

/// One cached message.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its topic.
    pub topic: Topic,
    /// Window sequence number (see `MessageCache::newest`).
    window: u64,
    /// Offset of the body in its window's arena.
    off: usize,
    /// Body length.
    len: usize,
    /// How often each peer was sent it on IWANT, less the IHAVEs of it
    /// sent to that peer since.
    iwant: Vec<(PeerId, u32)>,
    /// Peers known to have it (sent it to us, announced it, or said
    /// IDONTWANT).
    have: PeerSet<HAVE_INLINE>,
}

/// Most peers remembered per message as having it.
const MAX_HAVE: usize = 32;
/// Peers remembered inline (a mesh's worth) before the list spills.
const HAVE_INLINE: usize = 8;

/// One heartbeat's messages: ids in arrival order and their bodies.
#[derive(Debug, Default)]
struct Window {
    ids: Vec<MessageId>,
    /// Index in `ids` of the first message not evicted.
    start: usize,
    arena: Vec<u8>,
    /// Bytes of `arena` belonging to evicted messages (a prefix).
    dead: usize,
}

impl Window {
    fn clear(&mut self) {
        self.ids.clear();
        self.start = 0;
        self.arena.clear();
        self.dead = 0;
    }
}

/// Windows of messages, newest first.
#[derive(Debug)]
pub struct MessageCache {
    msgs: HashMap<MessageId, Entry>,
    windows: VecDeque<Window>,
    /// Sequence number of the newest window (`windows[0]`).
    newest: u64,
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
        windows.push_back(Window::default());
        Self {
            msgs: HashMap::new(),
            windows,
            newest: 0,
            len: len.max(1),
            gossip,
            bytes: 0,
            max_bytes,
        }
    }

    /// Adds a message to the newest window (evicting the oldest beyond
    /// the byte bound); false if already cached or larger than the bound.
    pub fn put(&mut self, id: MessageId, topic: Topic, body: &[u8]) -> bool {
        if self.msgs.contains_key(&id) {
            return false;
        }
        if body.len() > self.max_bytes {
            return false;
        }
        self.bytes += body.len();
        while self.bytes > self.max_bytes && self.evict_oldest() {}
        let Some(w) = self.windows.front_mut() else {
            return false;
        };
        let off = w.arena.len();
        w.arena.extend_from_slice(body);
        w.ids.push(id);
        self.msgs.insert(
            id,
            Entry {
                topic,
                window: self.newest,
                off,
                len: body.len(),
                iwant: Vec::new(),
                have: PeerSet::default(),
            },
        );
        true
    }

    /// Evicts the oldest message; false when none is left.
    fn evict_oldest(&mut self) -> bool {
        let Some(pos) = self.windows.iter().rposition(|w| w.start < w.ids.len()) else {
            return false;
        };
        let w = &mut self.windows[pos];
        let id = w.ids[w.start];
        w.start += 1;
        if let Some(e) = self.msgs.remove(&id) {
            self.bytes -= e.len;
            w.dead = e.off + e.len;
        }
        if w.start == w.ids.len() {
            w.clear();
        } else if w.dead > 0 && w.dead >= w.arena.len() / 2 {
            // Compact: drop the dead prefix and move the live bodies down.
            let dead = w.dead;
            w.arena.drain(..dead);
            w.ids.drain(..w.start);
            w.start = 0;
            w.dead = 0;
            for id in &w.ids {
                if let Some(e) = self.msgs.get_mut(id) {
                    e.off -= dead;
                }
            }
        }
        true
    }

    /// A cached message.
    pub fn get(&self, id: &MessageId) -> Option<&Entry> {
        self.msgs.get(id)
    }

    /// The body of a cached message.
    pub fn body(&self, id: &MessageId) -> Option<&[u8]> {
        let e = self.msgs.get(id)?;
        let idx = usize::try_from(self.newest.checked_sub(e.window)?).ok()?;
        self.windows.get(idx)?.arena.get(e.off..e.off + e.len)
    }

    /// True when message `id` may be sent to `peer` for an IWANT (cached,
    /// and not already sent to that peer `limit` times); counts the send.
    pub fn take_for_iwant(&mut self, id: &MessageId, peer: PeerId, limit: u32) -> bool {
        let Some(e) = self.msgs.get_mut(id) else {
            return false;
        };
        match e.iwant.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, n)) if *n >= limit => return false,
            Some((_, n)) => *n += 1,
            None => e.iwant.push((peer, 1)),
        }
        true
    }

    /// We advertised message `id` to `peer` (IHAVE): it may ask for it
    /// once more than [`Self::take_for_iwant`]'s limit would let it, since
    /// an answer to its last IWANT may have been lost.
    pub fn offered(&mut self, id: &MessageId, peer: &PeerId) {
        if let Some((_, n)) = self
            .msgs
            .get_mut(id)
            .and_then(|e| e.iwant.iter_mut().find(|(p, _)| p == peer))
        {
            *n = n.saturating_sub(1);
        }
    }

    /// Records that `peer` has message `id`.
    pub fn mark_has(&mut self, id: &MessageId, peer: PeerId) {
        if let Some(e) = self.msgs.get_mut(id) {
            e.have.insert(&peer, MAX_HAVE);
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
            .flat_map(|w| &w.ids[w.start..])
            .filter(|id| self.msgs.get(*id).is_some_and(|e| &*e.topic == topic))
            .copied()
            .collect()
    }

    /// Up to `max` ids of `topic` from every window, newest first.
    pub fn recent_ids(&self, topic: &str, max: usize) -> Vec<MessageId> {
        self.windows
            .iter()
            .flat_map(|w| w.ids[w.start..].iter().rev())
            .filter(|id| self.msgs.get(*id).is_some_and(|e| &*e.topic == topic))
            .take(max)
            .copied()
            .collect()
    }

    /// Starts a new window, dropping the oldest beyond the history length
    /// (its buffers become the new window's).
    pub fn shift(&mut self) {
        let mut fresh = Window::default();
        if self.windows.len() >= self.len {
            if let Some(mut old) = self.windows.pop_back() {
                for id in &old.ids[old.start..] {
                    if let Some(e) = self.msgs.remove(id) {
                        self.bytes -= e.len;
                    }
                }
                old.clear();
                fresh = old;
            }
        }
        self.newest += 1;
        self.windows.push_front(fresh);
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

    fn body(n: usize) -> Vec<u8> {
        vec![0u8; n]
    }

    #[test]
    fn windows_gossip_and_expire() {
        let mut c = MessageCache::new(3, 2, 1 << 20);
        let t: Topic = "a".into();
        assert!(c.put([1; 32], t.clone(), &body(10)));
        assert!(!c.put([1; 32], t.clone(), &body(10)));
        c.put([2; 32], "b".into(), &body(10));
        assert_eq!(c.gossip_ids("a"), vec![[1; 32]]);
        c.shift();
        c.shift();
        assert!(
            c.gossip_ids("a").is_empty(),
            "older than the gossip windows"
        );
        assert!(c.get(&[1; 32]).is_some(), "still served on IWANT");
        assert_eq!(c.body(&[1; 32]), Some(&body(10)[..]));
        c.shift();
        assert!(c.get(&[1; 32]).is_none());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn byte_bound_and_iwant_limit() {
        let mut c = MessageCache::new(10, 3, 100);
        for i in 0..5u8 {
            c.put([i; 32], "a".into(), &[i; 40]);
        }
        assert!(c.bytes() <= 100);
        assert_eq!(c.len(), 2);
        assert_eq!(c.body(&[4; 32]), Some(&[4u8; 40][..]));
        assert_eq!(c.body(&[3; 32]), Some(&[3u8; 40][..]));
        let p = PeerId([9; 32]);
        assert!(c.take_for_iwant(&[4; 32], p, 2));
        assert!(c.take_for_iwant(&[4; 32], p, 2));
        assert!(!c.take_for_iwant(&[4; 32], p, 2));
    }

    #[test]
    fn bodies_survive_compaction_and_recycled_windows() {
        let mut c = MessageCache::new(3, 3, 1000);
        for k in 0..200u32 {
            let id = {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&k.to_le_bytes());
                id
            };
            let b = vec![k as u8; 10 + (k as usize % 90)];
            c.put(id, "a".into(), &b);
            assert_eq!(c.body(&id), Some(&b[..]));
            assert!(c.bytes() <= 1000);
            if k % 17 == 0 {
                c.shift();
            }
        }
        // Every cached body is intact after evictions and compactions.
        let live: Vec<MessageId> = c.msgs.keys().copied().collect();
        for id in live {
            let k = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
            assert_eq!(
                c.body(&id),
                Some(&vec![k as u8; 10 + (k as usize % 90)][..])
            );
        }
        for w in &c.windows {
            assert!(w.arena.len() <= 2 * 1000 + 100);
        }
    }
}
