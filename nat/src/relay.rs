//! The sans-IO relay table a supernode keeps (issue #12): sessions keyed by
//! index, a session cap, a renewable TTL, an overall bandwidth cap and
//! per-peer token buckets. Over-limit traffic is dropped and counted, never
//! queued. Sessions hold peer slots, not keys, so one costs well under 256 B.
//! Time is a [`Duration`] since an origin the caller picks (sans-IO, like
//! the node's clock).

use std::collections::HashMap;
use std::time::Duration;

/// A relayed peer's identity (its static public key).
pub type PeerKey = [u8; 32];

/// Relay limits (MOSS.md `nat` and `security` blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// `relay_max_sessions` (50).
    pub max_sessions: usize,
    /// `relay_session_ttl_sec` (1800), renewable.
    pub session_ttl: Duration,
    /// `relay_max_bandwidth_kbps` (256) over all sessions.
    pub max_bandwidth_kbps: u32,
    /// Per-peer burst in bytes (`security.rate_limit_burst`, 256 KB).
    pub peer_burst_bytes: u32,
    /// Per-peer sustained rate in bytes per second (64 KB/s).
    pub peer_rate_bytes_per_sec: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_sessions: 50,
            session_ttl: Duration::from_secs(1800),
            max_bandwidth_kbps: 256,
            peer_burst_bytes: 256 * 1024,
            peer_rate_bytes_per_sec: 64 * 1024,
        }
    }
}

/// A session's handle: slot and generation, so a stale index never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionIndex {
    slot: u32,
    generation: u32,
}

impl SessionIndex {
    /// The wire form (slot in the high half).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.slot) << 32) | u64::from(self.generation)
    }

    /// From the wire form.
    pub fn from_u64(v: u64) -> Self {
        SessionIndex {
            slot: (v >> 32) as u32,
            generation: v as u32,
        }
    }
}

/// Why a session request is refused (the reason goes back to the requester).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `relay_max_sessions` sessions are open.
    #[error("relay full")]
    Full,
    /// Both ends are the same peer.
    #[error("a peer cannot relay to itself")]
    SamePeer,
    /// A session between these two peers exists already.
    #[error("session exists")]
    Duplicate,
}

/// Why a datagram was not forwarded (each is counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// No live session has this index.
    #[error("no such session")]
    NoSession,
    /// The sender is not an end of the session.
    #[error("sender is not in the session")]
    NotMember,
    /// The sender's token bucket is empty.
    #[error("peer over its rate")]
    PeerRate,
    /// The relay's overall bandwidth is used up.
    #[error("relay over its bandwidth")]
    Bandwidth,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Datagrams forwarded.
    pub forwarded: u64,
    /// Bytes forwarded.
    pub forwarded_bytes: u64,
    /// Dropped: unknown or expired session.
    pub dropped_no_session: u64,
    /// Dropped: sender not in the session.
    pub dropped_not_member: u64,
    /// Dropped: per-peer bucket empty.
    pub dropped_peer_rate: u64,
    /// Dropped: overall bandwidth used up.
    pub dropped_bandwidth: u64,
    /// Sessions that expired.
    pub expired: u64,
}

/// A token bucket in bytes, refilled from elapsed milliseconds. Times are
/// kept as wrapping 32-bit milliseconds (to keep slots small): a bucket idle
/// for more than 49 days refills less than it could, never more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    tokens: u32,
    at_ms: u32,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(burst: u32, now_ms: u64) -> Self {
        Bucket {
            tokens: burst,
            at_ms: now_ms as u32,
        }
    }

    /// Adds what `rate_per_sec` earned since the last refill, up to `burst`.
    pub fn refill(&mut self, now_ms: u64, rate_per_sec: u32, burst: u32) {
        let now_ms = now_ms as u32;
        let elapsed = u64::from(now_ms.wrapping_sub(self.at_ms));
        let add = elapsed.saturating_mul(u64::from(rate_per_sec)) / 1000;
        if add > 0 {
            self.tokens = (u64::from(self.tokens) + add).min(u64::from(burst)) as u32;
            self.at_ms = now_ms;
        }
    }
}

impl Bucket {
    /// Refills, then takes `n` tokens if that many are there (else takes
    /// nothing and returns false).
    pub fn take(&mut self, n: u32, now_ms: u64, rate_per_sec: u32, burst: u32) -> bool {
        self.refill(now_ms, rate_per_sec, burst);
        if self.tokens < n {
            return false;
        }
        self.tokens -= n;
        true
    }

    /// Tokens left.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }
}

/// A relayed peer; `sessions == 0` marks a free slot.
#[derive(Debug, Clone, Copy)]
struct Peer {
    key: PeerKey,
    bucket: Bucket,
    sessions: u32,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    generation: u32,
    /// Peer slots; `u32::MAX` marks a free session slot.
    ends: [u32; 2],
    expires_ms: u64,
}

const FREE: u32 = u32::MAX;
/// Sessions a table reserves room for up front at most.
pub const MAX_PRESIZE: usize = 65_536;

/// The relay table.
#[derive(Debug)]
pub struct RelayTable {
    cfg: RelayConfig,
    sessions: Vec<Session>,
    free_sessions: Vec<u32>,
    live: usize,
    peers: Vec<Peer>,
    free_peers: Vec<u32>,
    peer_index: HashMap<PeerKey, u32>,
    global: Bucket,
    stats: RelayStats,
}

impl RelayTable {
    /// An empty table sized for `max_sessions` (up to `MAX_PRESIZE`).
    pub fn new(cfg: RelayConfig) -> Self {
        let n = cfg.max_sessions.min(MAX_PRESIZE);
        RelayTable {
            cfg,
            sessions: Vec::with_capacity(n),
            free_sessions: Vec::new(),
            live: 0,
            peers: Vec::with_capacity(2 * n),
            free_peers: Vec::new(),
            peer_index: HashMap::with_capacity(2 * n),
            global: Bucket::full(Self::global_burst(&cfg), 0),
            stats: RelayStats::default(),
        }
    }

    fn global_rate(cfg: &RelayConfig) -> u32 {
        cfg.max_bandwidth_kbps.saturating_mul(1000) / 8
    }

    /// One second of the overall bandwidth.
    fn global_burst(cfg: &RelayConfig) -> u32 {
        Self::global_rate(cfg)
    }

    fn ms(&self, now: Duration) -> u64 {
        now.as_millis() as u64
    }

    fn peer_slot(&mut self, key: PeerKey, now_ms: u64) -> u32 {
        if let Some(&s) = self.peer_index.get(&key) {
            return s;
        }
        let peer = Peer {
            key,
            bucket: Bucket::full(self.cfg.peer_burst_bytes, now_ms),
            sessions: 0,
        };
        let slot = match self.free_peers.pop() {
            Some(s) => {
                self.peers[s as usize] = peer;
                s
            }
            None => {
                self.peers.push(peer);
                (self.peers.len() - 1) as u32
            }
        };
        self.peer_index.insert(key, slot);
        slot
    }

    fn release_peer(&mut self, slot: u32) {
        let Some(p) = self.peers.get_mut(slot as usize) else {
            return;
        };
        p.sessions = p.sessions.saturating_sub(1);
        if p.sessions == 0 {
            let key = p.key;
            self.peer_index.remove(&key);
            self.free_peers.push(slot);
        }
    }

    /// Opens a session between `a` and `b`.
    pub fn open(&mut self, now: Duration, a: PeerKey, b: PeerKey) -> Result<SessionIndex, Refusal> {
        if a == b {
            return Err(Refusal::SamePeer);
        }
        let now_ms = self.ms(now);
        if let (Some(&pa), Some(&pb)) = (self.peer_index.get(&a), self.peer_index.get(&b)) {
            let dup = self
                .sessions
                .iter()
                .any(|s| s.ends == [pa, pb] || s.ends == [pb, pa]);
            if dup {
                return Err(Refusal::Duplicate);
            }
        }
        if self.live >= self.cfg.max_sessions {
            self.expire(now);
        }
        if self.live >= self.cfg.max_sessions {
            return Err(Refusal::Full);
        }
        let (pa, pb) = (self.peer_slot(a, now_ms), self.peer_slot(b, now_ms));
        for p in [pa, pb] {
            if let Some(peer) = self.peers.get_mut(p as usize) {
                peer.sessions += 1;
            }
        }
        let expires_ms = now_ms + self.cfg.session_ttl.as_millis() as u64;
        let slot = match self.free_sessions.pop() {
            Some(s) => s,
            None => {
                self.sessions.push(Session {
                    generation: 0,
                    ends: [FREE; 2],
                    expires_ms: 0,
                });
                (self.sessions.len() - 1) as u32
            }
        };
        let s = &mut self.sessions[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        s.ends = [pa, pb];
        s.expires_ms = expires_ms;
        let generation = s.generation;
        self.live += 1;
        Ok(SessionIndex { slot, generation })
    }

    fn live_session(&self, idx: SessionIndex, now_ms: u64) -> Option<&Session> {
        self.sessions.get(idx.slot as usize).filter(|s| {
            s.generation == idx.generation && s.ends[0] != FREE && s.expires_ms > now_ms
        })
    }

    /// Extends a live session by the TTL from now.
    pub fn renew(&mut self, now: Duration, idx: SessionIndex) -> Result<(), Dropped> {
        let now_ms = self.ms(now);
        let ttl = self.cfg.session_ttl.as_millis() as u64;
        if self.live_session(idx, now_ms).is_none() {
            return Err(Dropped::NoSession);
        }
        self.sessions[idx.slot as usize].expires_ms = now_ms + ttl;
        Ok(())
    }

    fn remove(&mut self, slot: u32) {
        let s = self.sessions[slot as usize];
        if s.ends[0] == FREE {
            return;
        }
        let [pa, pb] = s.ends;
        self.release_peer(pa);
        self.release_peer(pb);
        self.sessions[slot as usize].ends = [FREE; 2];
        self.free_sessions.push(slot);
        self.live -= 1;
    }

    /// Closes a session (either end asked, or the supernode stops).
    pub fn close(&mut self, idx: SessionIndex) {
        if let Some(s) = self.sessions.get(idx.slot as usize) {
            if s.generation == idx.generation {
                self.remove(idx.slot);
            }
        }
    }

    /// Removes expired sessions.
    pub fn expire(&mut self, now: Duration) {
        let now_ms = self.ms(now);
        for slot in 0..self.sessions.len() {
            let s = self.sessions[slot];
            if s.ends[0] != FREE && s.expires_ms <= now_ms {
                self.remove(slot as u32);
                self.stats.expired += 1;
            }
        }
    }

    /// When the next session expires.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.sessions
            .iter()
            .filter(|s| s.ends[0] != FREE)
            .map(|s| s.expires_ms)
            .min()
            .map(Duration::from_millis)
    }

    /// Decides one datagram of `len` bytes from `from` on session `idx`: the
    /// peer to forward it to, or why it is dropped (and counted).
    pub fn forward(
        &mut self,
        now: Duration,
        idx: SessionIndex,
        from: &PeerKey,
        len: usize,
    ) -> Result<PeerKey, Dropped> {
        let r = self.decide(now, idx, from, len);
        match r {
            Ok(_) => {
                self.stats.forwarded += 1;
                self.stats.forwarded_bytes += len as u64;
            }
            Err(Dropped::NoSession) => self.stats.dropped_no_session += 1,
            Err(Dropped::NotMember) => self.stats.dropped_not_member += 1,
            Err(Dropped::PeerRate) => self.stats.dropped_peer_rate += 1,
            Err(Dropped::Bandwidth) => self.stats.dropped_bandwidth += 1,
        }
        r
    }

    fn decide(
        &mut self,
        now: Duration,
        idx: SessionIndex,
        from: &PeerKey,
        len: usize,
    ) -> Result<PeerKey, Dropped> {
        let now_ms = self.ms(now);
        let s = *self.live_session(idx, now_ms).ok_or(Dropped::NoSession)?;
        let key = |t: &Self, slot: u32| {
            t.peers
                .get(slot as usize)
                .filter(|p| p.sessions > 0)
                .map(|p| p.key)
        };
        let (src, dst) = match (key(self, s.ends[0]), key(self, s.ends[1])) {
            (Some(a), Some(b)) if &a == from => (s.ends[0], b),
            (Some(a), Some(b)) if &b == from => (s.ends[1], a),
            _ => return Err(Dropped::NotMember),
        };
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let (rate, burst) = (self.cfg.peer_rate_bytes_per_sec, self.cfg.peer_burst_bytes);
        let peer = self.peers.get_mut(src as usize).ok_or(Dropped::NotMember)?;
        peer.bucket.refill(now_ms, rate, burst);
        if peer.bucket.tokens < len {
            return Err(Dropped::PeerRate);
        }
        let cfg = self.cfg;
        self.global
            .refill(now_ms, Self::global_rate(&cfg), Self::global_burst(&cfg));
        if self.global.tokens < len {
            return Err(Dropped::Bandwidth);
        }
        self.global.tokens -= len;
        if let Some(p) = self.peers.get_mut(src as usize) {
            p.bucket.tokens -= len;
        }
        Ok(dst)
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no session is open.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }
}

/// Bytes the table's own structures take per session slot (not counting the
/// peers' entries); see the `relay_memory` example for the measured total.
pub const SESSION_SLOT_BYTES: usize = std::mem::size_of::<Session>();
/// Bytes one relayed peer's slot takes (key, bucket, session count).
pub const PEER_SLOT_BYTES: usize = std::mem::size_of::<Peer>();
