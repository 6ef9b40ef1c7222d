//! The relay data plane: what a supernode's [`crate::SessionShard`] does
//! with a data datagram that is not for one of its own sessions.
//!
//! The two ends of a relayed pair run their own Noise session; their data
//! datagrams are ordinary Moss data datagrams sent to the supernode's
//! address. The supernode unmasks the 16-byte head (one ChaCha20 block with
//! the mesh's scramble key: the same work every receiver does first),
//! reads the receiver index (the far end's index, learnt from the
//! handshake it carried) and forwards the datagram **unchanged** when it
//! came from the address of the other end. No re-seal: the ends' AEAD
//! already authenticates every byte end to end, a forged or altered
//! datagram fails at the far end exactly as it would on a direct path, and
//! a third party cannot use the route because the source address must be
//! the registered end's (a spoofed source gets nothing back and spends the
//! victim's bucket only: see PROTOCOL.md). So a forwarded datagram costs
//! one block of keystream, two hash lookups (the shard's own sessions,
//! then the receiver index → relay slot map, both with the keyed
//! multiply-fold [`IndexHash`]), an address compare and a token-bucket
//! check: no lock, no allocation.
//!
//! Memory: one [`SLOT_BYTES`] slot per relay session (both directions,
//! compact addresses, the two ends' buckets) in chunks indexed by the
//! session id's slot half, plus two 8-byte map entries.

use super::slab::Slab;
use crate::path::Path;
use crate::stats::DropReason;
use moss_nat::relay::Bucket;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Rate limits of the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// Burst of one relayed end, bytes (`security.rate_limit_burst`).
    pub peer_burst: u32,
    /// Sustained rate of one relayed end, bytes/s
    /// (`security.rate_limit_sustained`).
    pub peer_rate: u32,
    /// All relayed traffic of this shard, bytes/s
    /// (`nat.relay_max_bandwidth_kbps` × 125); the burst is one second.
    pub total_rate: u32,
}

/// One direction of a relay session: datagrams with receiver index
/// `index` that come from `src` go to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The end that sends on this route.
    pub src: SocketAddr,
    /// The end it reaches.
    pub dst: SocketAddr,
    /// The relay session it belongs to (slot in the high half,
    /// generation in the low: [`super::sessions::Sessions`]).
    pub session: u64,
}

/// A socket address in 19 bytes (a `SocketAddr` takes 32): the IPv6 form
/// of the address (IPv4 mapped), the port, and which family it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Addr {
    ip: [u8; 16],
    port: [u8; 2],
    v4: bool,
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Self {
        let (ip, v4) = match a.ip() {
            IpAddr::V4(ip) => (ip.to_ipv6_mapped().octets(), true),
            IpAddr::V6(ip) => (ip.octets(), false),
        };
        Self {
            ip,
            port: a.port().to_be_bytes(),
            v4,
        }
    }
}

impl Addr {
    /// Whether `a` is this address: `Addr::from(*a) == *self`, without
    /// building the 19 bytes (once per forwarded datagram).
    fn is(&self, a: &SocketAddr) -> bool {
        match a {
            SocketAddr::V4(a) => {
                self.v4
                    && self.port == a.port().to_be_bytes()
                    && self.ip[12..] == a.ip().octets()
                    && self.ip[..12] == V4_MAPPED
            }
            SocketAddr::V6(a) => {
                !self.v4 && self.port == a.port().to_be_bytes() && self.ip == a.ip().octets()
            }
        }
    }
}

/// The first 12 bytes of an IPv4-mapped IPv6 address.
const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Built once per forwarded datagram (its destination): an IPv4 address
/// straight from its four bytes, without going through `Ipv6Addr`.
impl From<Addr> for SocketAddr {
    fn from(a: Addr) -> Self {
        let port = u16::from_be_bytes(a.port);
        if !a.v4 {
            return SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a.ip)), port);
        }
        let ip = match (a.ip[..12] == V4_MAPPED, &a.ip[12..]) {
            (true, &[b0, b1, b2, b3]) => Ipv4Addr::new(b0, b1, b2, b3),
            _ => Ipv4Addr::UNSPECIFIED,
        };
        SocketAddr::V4(std::net::SocketAddrV4::new(ip, port))
    }
}

/// Both directions of one relay session, at the slot of its id. End `e`
/// is at `addr[e]`; datagrams with receiver index `to[e]` (end `e`'s own
/// session index) come from the other end, cost the other end's
/// `bucket`, and go to `addr[e]`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    addr: [Addr; 2],
    to: [u32; 2],
    generation: u32,
    /// Bit `e` set: `to[e]` is routed. 0: the slot is free.
    routed: u8,
    bucket: [Bucket; 2],
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            addr: [Addr::default(); 2],
            to: [0; 2],
            generation: 0,
            routed: 0,
            bucket: [Bucket::full(0, 0); 2],
        }
    }
}

/// Hashes session indices (the route map's, and a shard's own sessions'):
/// the index XOR a key, times a multiplier, 64 × 64 → 128 bits folded to
/// 64 (foldhash's folded multiply). The ends choose the routed indices, so
/// key and multiplier are secret and drawn per map (from the standard
/// library's randomly keyed hasher): an end cannot aim its indices at one
/// bucket. SipHash, the default, cost two of its rounds per forwarded
/// datagram, once per map.
#[derive(Debug, Clone, Copy)]
pub struct IndexHash {
    key: u64,
    mul: u64,
}

impl IndexHash {
    /// A hasher with fresh random keys.
    pub fn random() -> Self {
        let r = std::collections::hash_map::RandomState::new();
        Self {
            key: r.hash_one(1u64),
            mul: r.hash_one(2u64) | 1,
        }
    }
}

/// Fresh random keys, as [`IndexHash::random`] (for maps built with
/// `Default`).
impl Default for IndexHash {
    fn default() -> Self {
        Self::random()
    }
}

/// The state of one [`IndexHash`] hashing.
#[derive(Debug, Clone, Copy)]
pub struct IndexHasher {
    key: u64,
    mul: u64,
    acc: u64,
}

fn fold(x: u64, y: u64) -> u64 {
    let m = u128::from(x).wrapping_mul(u128::from(y));
    (m as u64) ^ ((m >> 64) as u64)
}

impl Hasher for IndexHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by the u32 keys of the map; correct for any input.
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.acc = fold(self.acc ^ u64::from_le_bytes(w), self.mul);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.acc ^= u64::from(i);
    }

    fn finish(&self) -> u64 {
        // Two rounds: with one, about 1 key in 6 left indices that differ
        // only in their high bits crowded into few low bits (the bucket
        // bits), which the spread test caught now and then.
        fold(fold(self.acc ^ self.key, self.mul) ^ self.key, self.mul)
    }
}

impl BuildHasher for IndexHash {
    type Hasher = IndexHasher;

    fn build_hasher(&self) -> IndexHasher {
        IndexHasher {
            key: self.key,
            mul: self.mul,
            acc: 0,
        }
    }
}

/// A shard's relay routes: one dense slot per relay session, found from a
/// receiver index through one small map.
#[derive(Debug)]
pub struct RelayRoutes {
    slots: Slab<Slot>,
    /// Receiver index → slot × 2 + end.
    by_index: HashMap<u32, u32, IndexHash>,
    total: Bucket,
    limits: RouteLimits,
}

/// Why a route was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Another route already uses the index.
    #[error("receiver index already routed")]
    Taken,
    /// The session id's slot is past [`super::slab::MAX_SLOTS`].
    #[error("relay session id out of range")]
    BadSession,
}

/// The slot and generation halves of a relay session id.
fn split(session: u64) -> (u32, u32) {
    ((session >> 32) as u32, session as u32)
}

impl RelayRoutes {
    /// No routes yet.
    pub fn new(limits: RouteLimits) -> Self {
        Self {
            slots: Slab::default(),
            by_index: HashMap::with_hasher(IndexHash::random()),
            total: Bucket::full(limits.total_rate, 0),
            limits,
        }
    }

    /// Changes the limits (existing buckets keep their tokens).
    pub fn set_limits(&mut self, limits: RouteLimits) {
        self.limits = limits;
    }

    /// Number of routes (two per relay session once both ends spoke).
    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    /// True if there is no route.
    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// Routes datagrams to `index` from `route.src` to `route.dst`. A
    /// route of the same session for the same index is replaced (an end
    /// re-handshook, or its address changed); an end's new index replaces
    /// its old one; another session's index is refused.
    pub fn add(&mut self, index: u32, route: Route, now_ms: u64) -> Result<(), RouteError> {
        let (slot, generation) = split(route.session);
        if let Some(&at) = self.by_index.get(&index) {
            let live = self.slots.get(at / 2).is_some_and(|s| s.routed != 0);
            if live
                && (at / 2 != slot
                    || self.slots.get(slot).map(|s| s.generation) != Some(generation))
            {
                return Err(RouteError::Taken);
            }
        }
        let s = *self.slots.slot(slot).ok_or(RouteError::BadSession)?;
        if s.routed != 0 && s.generation != generation {
            // A stale session in the slot (its unroute was lost).
            self.remove_session((u64::from(slot) << 32) | u64::from(s.generation));
        }
        let (src, dst) = (Addr::from(route.src), Addr::from(route.dst));
        let Some(s) = self.slots.get_mut(slot) else {
            return Err(RouteError::BadSession);
        };
        if s.routed == 0 || s.generation != generation {
            *s = Slot {
                addr: [dst, src],
                generation,
                ..Slot::default()
            };
        }
        let has = |s: &Slot, e: usize| s.routed & (1 << e) != 0;
        let e = (0..2)
            .find(|&e| has(s, e) && s.to[e] == index)
            .or_else(|| (0..2).find(|&e| s.addr[e] == dst))
            .or_else(|| (0..2).find(|&e| s.addr[1 - e] == src))
            .unwrap_or(0);
        let old = has(s, e).then_some(s.to[e]);
        if old != Some(index) {
            s.bucket[1 - e] = Bucket::full(self.limits.peer_burst, now_ms);
        }
        s.addr[e] = dst;
        s.addr[1 - e] = src;
        s.to[e] = index;
        s.routed |= 1 << e;
        if let Some(old) = old.filter(|&o| o != index) {
            self.by_index.remove(&old);
        }
        self.by_index.insert(index, slot * 2 + e as u32);
        Ok(())
    }

    /// Removes every route of relay session `session`.
    pub fn remove_session(&mut self, session: u64) {
        let (slot, generation) = split(session);
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if s.routed == 0 || s.generation != generation {
            return;
        }
        for e in 0..2 {
            if s.routed & (1 << e) != 0 {
                self.by_index.remove(&s.to[e]);
            }
        }
        *s = Slot::default();
    }

    /// The route of `index`, if any.
    pub fn get(&self, index: u32) -> Option<Route> {
        let at = *self.by_index.get(&index)?;
        let s = self.slots.get(at / 2)?;
        let e = (at % 2) as usize;
        Some(Route {
            src: s.addr[1 - e].into(),
            dst: s.addr[e].into(),
            session: (u64::from(at / 2) << 32) | u64::from(s.generation),
        })
    }

    /// Decides one datagram of `len` bytes with receiver index `index`
    /// from `from`: `None` if no route has the index (not relayed), else
    /// where it goes or why it is dropped.
    pub fn forward(
        &mut self,
        index: u32,
        from: Path,
        len: usize,
        now_ms: u64,
    ) -> Option<Result<SocketAddr, DropReason>> {
        let at = *self.by_index.get(&index)?;
        let s = self.slots.get_mut(at / 2)?;
        let e = (at % 2) as usize;
        if !from.udp().is_some_and(|a| s.addr[1 - e].is(&a)) {
            return Some(Err(DropReason::RelayUnknownSession));
        }
        let n = u32::try_from(len).unwrap_or(u32::MAX);
        let l = self.limits;
        if !s.bucket[1 - e].take(n, now_ms, l.peer_rate, l.peer_burst) {
            return Some(Err(DropReason::RelayRateLimited));
        }
        if !self.total.take(n, now_ms, l.total_rate, l.total_rate) {
            return Some(Err(DropReason::RelayRateLimited));
        }
        Some(Ok(s.addr[e].into()))
    }
}

/// Bytes one relay session's slot takes (both directions; the index map
/// adds two entries of 8 bytes plus its control bytes and spare room).
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_itself_and_no_other() {
        let v4 = [
            a("192.0.2.1:4000"),
            a("192.0.2.1:4001"),
            a("192.0.2.2:4000"),
        ];
        let v6 = [a("[2001:db8::1]:4000"), a("[::ffff:192.0.2.1]:4000")];
        let all: Vec<SocketAddr> = v4.iter().chain(&v6).copied().collect();
        for x in &all {
            assert_eq!(SocketAddr::from(Addr::from(*x)), *x, "{x} round trip");
            for y in &all {
                assert_eq!(Addr::from(*x).is(y), x == y, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn the_index_hash_spreads_and_depends_on_its_key() {
        let (h1, h2) = (IndexHash::random(), IndexHash::random());
        let mut low = std::collections::HashSet::new();
        let mut same = 0;
        for i in 0..1024u32 {
            let x = h1.hash_one(i << 20);
            low.insert(x & 1023);
            same += usize::from(x == h2.hash_one(i << 20));
        }
        // Indices differing only in high bits still fill the low bits.
        assert!(low.len() > 512, "{}", low.len());
        assert_eq!(same, 0);
    }

    #[test]
    fn forwards_from_the_registered_end_within_its_bucket() {
        let mut r = RelayRoutes::new(RouteLimits {
            peer_burst: 3000,
            peer_rate: 1000,
            total_rate: 1_000_000,
        });
        let (x, y) = (a("192.0.2.1:1"), a("192.0.2.2:2"));
        let route = Route {
            src: x,
            dst: y,
            session: 9,
        };
        r.add(7, route, 0).unwrap();
        assert_eq!(
            r.add(
                7,
                Route {
                    session: 10,
                    ..route
                },
                0
            ),
            Err(RouteError::Taken)
        );
        assert_eq!(r.forward(8, Path::Udp(x), 100, 0), None);
        assert_eq!(
            r.forward(7, Path::Udp(y), 100, 0),
            Some(Err(DropReason::RelayUnknownSession))
        );
        for _ in 0..3 {
            assert_eq!(r.forward(7, Path::Udp(x), 1000, 0), Some(Ok(y)));
        }
        assert_eq!(
            r.forward(7, Path::Udp(x), 1000, 0),
            Some(Err(DropReason::RelayRateLimited))
        );
        // One second later, one second of sustained rate.
        assert_eq!(r.forward(7, Path::Udp(x), 1000, 1000), Some(Ok(y)));
        r.remove_session(9);
        assert!(r.is_empty());
        const { assert!(SLOT_BYTES <= 72) };
    }
}
