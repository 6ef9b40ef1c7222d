//! A supernode's relay sessions: one dense slot per session (the two ends,
//! the expiry, a generation, each end's control-plane bucket) in chunks,
//! a free list, and one map from the pair to its slot. No per-session
//! allocation; the ends are kept by identity because the node's session
//! with an end may be replaced (a re-handshake) while the relay session
//! goes on.
//!
//! A session id is `slot << 32 | generation`: a closed slot's next session
//! has a new generation, so a stale id never matches. The data plane
//! ([`super::route`]) keeps its routes at the same slot.

use super::slab::{Slab, MAX_SLOTS};
use crate::config::Config;
use moss_crypto::PeerId;
use moss_nat::relay::{Bucket, Dropped, Refusal};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Duration;

/// One session. `expires_s == 0` marks a free slot (a live one expires at
/// least a second after the node's origin).
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Initiator, responder.
    ends: [PeerId; 2],
    /// Whole seconds since the node's origin, rounded up.
    expires_s: u32,
    generation: u32,
    /// Each end's bucket for what it sends through the control plane.
    bucket: [Bucket; 2],
    /// Each end's own session index (the receiver index of the datagrams
    /// that go to it), once its handshake message passed: the data plane
    /// is routed again with them when an end's address changes.
    index: [u32; 2],
    /// Bit `e` set: `index[e]` is known.
    indexed: u8,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            ends: [PeerId([0; 32]); 2],
            expires_s: 0,
            generation: 0,
            bucket: [Bucket::full(0, 0); 2],
            index: [0; 2],
            indexed: 0,
        }
    }
}

/// How a request was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A new session.
    New(u64),
    /// The pair's session existed: its TTL starts again (a renewal, or the
    /// other end asking after a lost accept).
    Renewed(u64),
}

impl Admitted {
    /// The session id either way.
    pub fn id(self) -> u64 {
        match self {
            Self::New(id) | Self::Renewed(id) => id,
        }
    }
}

/// The table.
#[derive(Debug)]
pub struct Sessions {
    slots: Slab<Slot>,
    free: Vec<u32>,
    /// Slots handed out so far (the next new one).
    used: u32,
    /// Fingerprint of the (unordered) pair → slot.
    pairs: HashMap<u64, u32>,
    hasher: RandomState,
    live: usize,
    max: usize,
    ttl: Duration,
    peer_burst: u32,
    peer_rate: u32,
    total_rate: u32,
    total: Bucket,
}

fn split(id: u64) -> (u32, u32) {
    ((id >> 32) as u32, id as u32)
}

fn ms(t: Duration) -> u64 {
    t.as_millis() as u64
}

impl Sessions {
    /// No sessions; limits from `cfg` (`relay_max_sessions`,
    /// `relay_session_ttl_sec`, `relay_max_bandwidth_kbps`,
    /// `security.rate_limit_*`).
    pub fn new(cfg: &Config) -> Self {
        let l = super::limits_of(cfg);
        Self {
            slots: Slab::default(),
            free: Vec::new(),
            used: 0,
            pairs: HashMap::new(),
            hasher: RandomState::new(),
            live: 0,
            max: cfg.nat.relay_max_sessions as usize,
            ttl: Duration::from_secs(u64::from(cfg.nat.relay_session_ttl_sec)),
            peer_burst: l.peer_burst,
            peer_rate: l.peer_rate,
            total_rate: l.total_rate,
            total: Bucket::full(l.total_rate, 0),
        }
    }

    /// The session TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True if none is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn pair_key(&self, a: &PeerId, b: &PeerId) -> u64 {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        self.hasher.hash_one((lo, hi))
    }

    fn expiry(&self, now: Duration) -> u32 {
        let at = now.saturating_add(self.ttl);
        let s = at.as_secs() + u64::from(at.subsec_nanos() > 0);
        u32::try_from(s.max(1)).unwrap_or(u32::MAX)
    }

    fn live_slot(&self, id: u64) -> Option<&Slot> {
        let (slot, generation) = split(id);
        self.slots
            .get(slot)
            .filter(|s| s.expires_s != 0 && s.generation == generation)
    }

    /// Admits a request of `a` for a session with `b`: the pair's
    /// existing session is renewed, else a new one opens within
    /// `relay_max_sessions`.
    pub fn admit(&mut self, now: Duration, a: PeerId, b: PeerId) -> Result<Admitted, Refusal> {
        if a == b {
            return Err(Refusal::SamePeer);
        }
        let key = self.pair_key(&a, &b);
        let expires_s = self.expiry(now);
        if let Some(&slot) = self.pairs.get(&key) {
            let s = self.slots.get_mut(slot).ok_or(Refusal::Full)?;
            if s.ends != [a, b] && s.ends != [b, a] {
                // A 64-bit fingerprint collision with another pair.
                return Err(Refusal::Full);
            }
            s.expires_s = expires_s;
            return Ok(Admitted::Renewed(
                (u64::from(slot) << 32) | u64::from(s.generation),
            ));
        }
        if self.live >= self.max {
            return Err(Refusal::Full);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.used < MAX_SLOTS => {
                self.used += 1;
                self.used - 1
            }
            None => return Err(Refusal::Full),
        };
        let burst = Bucket::full(self.peer_burst, ms(now));
        let s = self.slots.slot(slot).ok_or(Refusal::Full)?;
        let generation = s.generation.wrapping_add(1);
        *s = Slot {
            ends: [a, b],
            expires_s,
            generation,
            bucket: [burst; 2],
            ..Slot::default()
        };
        self.pairs.insert(key, slot);
        self.live += 1;
        Ok(Admitted::New(
            (u64::from(slot) << 32) | u64::from(generation),
        ))
    }

    /// The ends (initiator, responder) of live session `id`.
    pub fn ends(&self, id: u64) -> Option<[PeerId; 2]> {
        self.live_slot(id).map(|s| s.ends)
    }

    /// True if `id` is live.
    pub fn contains(&self, id: u64) -> bool {
        self.live_slot(id).is_some()
    }

    /// Notes end `end`'s own session index in live session `id` (from a
    /// handshake message it sent through the control plane).
    pub fn set_index(&mut self, id: u64, end: &PeerId, index: u32) {
        let (slot, generation) = split(id);
        let Some(s) = self
            .slots
            .get_mut(slot)
            .filter(|s| s.expires_s != 0 && s.generation == generation)
        else {
            return;
        };
        if let Some(e) = s.ends.iter().position(|p| p == end) {
            s.index[e] = index;
            s.indexed |= 1 << e;
        }
    }

    /// The ends of live session `id`, each with its session index if
    /// known.
    pub fn indexed_ends(&self, id: u64) -> Option<[(PeerId, Option<u32>); 2]> {
        let s = self.live_slot(id)?;
        let of = |e: usize| (s.ends[e], (s.indexed & (1 << e) != 0).then_some(s.index[e]));
        Some([of(0), of(1)])
    }

    /// Decides one datagram of `len` bytes `from` an end of session `id`
    /// carried by the control plane: the other end, or why it is dropped.
    pub fn forward(
        &mut self,
        now: Duration,
        id: u64,
        from: &PeerId,
        len: usize,
    ) -> Result<PeerId, Dropped> {
        let (slot, generation) = split(id);
        let (rate, burst, total_rate) = (self.peer_rate, self.peer_burst, self.total_rate);
        let s = self
            .slots
            .get_mut(slot)
            .filter(|s| s.expires_s != 0 && s.generation == generation)
            .ok_or(Dropped::NoSession)?;
        let e = s
            .ends
            .iter()
            .position(|p| p == from)
            .ok_or(Dropped::NotMember)?;
        let n = u32::try_from(len).unwrap_or(u32::MAX);
        let now_ms = ms(now);
        let mut probe = s.bucket[e];
        if !probe.take(n, now_ms, rate, burst) {
            return Err(Dropped::PeerRate);
        }
        if !self.total.take(n, now_ms, total_rate, total_rate) {
            return Err(Dropped::Bandwidth);
        }
        s.bucket[e] = probe;
        Ok(s.ends[1 - e])
    }

    /// Closes session `id`; its ends if it was live.
    pub fn close(&mut self, id: u64) -> Option<[PeerId; 2]> {
        let ends = self.ends(id)?;
        let (slot, _) = split(id);
        let key = self.pair_key(&ends[0], &ends[1]);
        self.pairs.remove(&key);
        if let Some(s) = self.slots.get_mut(slot) {
            s.expires_s = 0;
        }
        self.free.push(slot);
        self.live -= 1;
        Some(ends)
    }

    /// Live sessions `pick` selects, by slot order (so runs replay).
    fn select(&self, pick: impl Fn(&Slot) -> bool) -> Vec<u64> {
        (0..self.used)
            .filter_map(|i| {
                let s = self.slots.get(i)?;
                (s.expires_s != 0 && pick(s))
                    .then_some((u64::from(i) << 32) | u64::from(s.generation))
            })
            .collect()
    }

    /// Sessions whose TTL ran out by `now`.
    pub fn expired(&self, now: Duration) -> Vec<u64> {
        let now_s = now.as_secs();
        self.select(|s| u64::from(s.expires_s) <= now_s)
    }

    /// Sessions `peer` is an end of.
    pub fn of_peer(&self, peer: &PeerId) -> Vec<u64> {
        self.select(|s| s.ends.contains(peer))
    }

    /// Every live session.
    pub fn all(&self) -> Vec<u64> {
        self.select(|_| true)
    }
}

/// Bytes one session's slot takes (the pair map adds one 16-byte entry
/// plus its control byte and spare room).
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

#[cfg(test)]
mod tests {
    use super::*;

    fn p(i: u8) -> PeerId {
        PeerId([i; 32])
    }

    /// A table of `max` sessions with TTL `ttl` s, end buckets of 3000 B
    /// burst and 1000 B/s, `kbps` in all.
    fn table_of(max: u32, ttl: u32, kbps: u32) -> Sessions {
        let mut cfg = Config::default();
        cfg.nat.relay_max_sessions = max;
        cfg.nat.relay_session_ttl_sec = ttl;
        cfg.security.rate_limit_burst = 3000;
        cfg.security.rate_limit_sustained = 1000;
        cfg.nat.relay_max_bandwidth_kbps = kbps;
        Sessions::new(&cfg)
    }

    fn table(max: u32, ttl: u32) -> Sessions {
        table_of(max, ttl, 1_000_000)
    }

    const T0: Duration = Duration::ZERO;

    #[test]
    fn relay_max_sessions_is_enforced_and_a_closed_slot_is_reused_with_a_new_id() {
        let mut t = table(2, 60);
        let a = t.admit(T0, p(1), p(2)).unwrap().id();
        let b = t.admit(T0, p(1), p(3)).unwrap().id();
        assert_eq!(t.admit(T0, p(4), p(5)), Err(Refusal::Full));
        assert_eq!(t.admit(T0, p(6), p(6)), Err(Refusal::SamePeer));
        // The same pair, either way round, is a renewal, not a third.
        assert_eq!(t.admit(T0, p(2), p(1)), Ok(Admitted::Renewed(a)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.close(a), Some([p(1), p(2)]));
        assert_eq!(t.close(a), None);
        let c = t.admit(T0, p(4), p(5)).unwrap().id();
        assert_eq!(c >> 32, a >> 32, "the freed slot");
        assert_ne!(c, a, "with a new generation");
        assert!(!t.contains(a) && t.contains(b) && t.contains(c));
        assert_eq!(t.ends(c), Some([p(4), p(5)]));
        assert_eq!(t.all(), vec![c, b]);
        assert_eq!(t.of_peer(&p(1)), vec![b]);
    }

    #[test]
    fn the_ttl_ends_a_session_unless_it_is_renewed() {
        let mut t = table(10, 60);
        let a = t.admit(T0, p(1), p(2)).unwrap().id();
        let b = t.admit(T0, p(3), p(4)).unwrap().id();
        let s = Duration::from_secs;
        assert!(t.expired(s(59)).is_empty());
        assert_eq!(t.admit(s(30), p(1), p(2)), Ok(Admitted::Renewed(a)));
        assert_eq!(t.expired(s(60)), vec![b]);
        assert_eq!(t.expired(s(89)), vec![b]);
        assert_eq!(t.expired(s(90)), vec![a, b]);
    }

    #[test]
    fn each_ends_bucket_is_enforced_on_its_own() {
        let mut t = table(10, 60);
        let a = t.admit(T0, p(1), p(2)).unwrap().id();
        for _ in 0..3 {
            assert_eq!(t.forward(T0, a, &p(1), 1000), Ok(p(2)));
        }
        assert_eq!(t.forward(T0, a, &p(1), 1000), Err(Dropped::PeerRate));
        // The other end's bucket is its own.
        assert_eq!(t.forward(T0, a, &p(2), 1000), Ok(p(1)));
        assert_eq!(t.forward(T0, a, &p(5), 10), Err(Dropped::NotMember));
        assert_eq!(t.forward(T0, a + 1, &p(1), 10), Err(Dropped::NoSession));
    }

    #[test]
    fn relay_max_bandwidth_kbps_caps_all_ends_together() {
        // 16 kbit/s = 2000 B/s in all, one second of burst: two ends with
        // full 3000 B buckets get 2000 B through between them.
        let mut t = table_of(10, 60, 16);
        let a = t.admit(T0, p(1), p(2)).unwrap().id();
        let b = t.admit(T0, p(3), p(4)).unwrap().id();
        assert_eq!(t.forward(T0, a, &p(1), 1500), Ok(p(2)));
        assert_eq!(t.forward(T0, b, &p(3), 1500), Err(Dropped::Bandwidth));
        assert_eq!(t.forward(T0, b, &p(3), 500), Ok(p(4)));
        assert_eq!(t.forward(T0, b, &p(4), 1), Err(Dropped::Bandwidth));
        // A refused datagram took nothing from the end's bucket: p(3) still
        // has 2500 B once the total refills.
        let later = Duration::from_secs(2);
        assert_eq!(t.forward(later, b, &p(3), 2000), Ok(p(4)));
    }
}
