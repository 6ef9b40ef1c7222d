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
//! one block of keystream, two hash lookups and a token-bucket check: no
//! lock, no allocation.

use crate::path::Path;
use crate::stats::DropReason;
use moss_nat::relay::Bucket;
use std::collections::HashMap;
use std::net::SocketAddr;

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
    /// The relay session it belongs to.
    pub session: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    route: Route,
    bucket: Bucket,
}

/// A shard's relay routes by receiver index.
#[derive(Debug)]
pub struct RelayRoutes {
    map: HashMap<u32, Entry>,
    total: Bucket,
    limits: RouteLimits,
}

/// Why a route was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Another route already uses the index.
    #[error("receiver index already routed")]
    Taken,
}

impl RelayRoutes {
    /// No routes yet.
    pub fn new(limits: RouteLimits) -> Self {
        Self {
            map: HashMap::new(),
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
        self.map.len()
    }

    /// True if there is no route.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Routes datagrams to `index` from `route.src` to `route.dst`. A
    /// route of the same session for the same index is replaced (an end
    /// re-handshook); another session's is refused.
    pub fn add(&mut self, index: u32, route: Route, now_ms: u64) -> Result<(), RouteError> {
        if let Some(e) = self.map.get(&index) {
            if e.route.session != route.session {
                return Err(RouteError::Taken);
            }
        }
        let bucket = Bucket::full(self.limits.peer_burst, now_ms);
        self.map.insert(index, Entry { route, bucket });
        Ok(())
    }

    /// Removes every route of relay session `session`.
    pub fn remove_session(&mut self, session: u64) {
        self.map.retain(|_, e| e.route.session != session);
    }

    /// The route of `index`, if any.
    pub fn get(&self, index: u32) -> Option<Route> {
        self.map.get(&index).map(|e| e.route)
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
        let e = self.map.get_mut(&index)?;
        if from.udp() != Some(e.route.src) {
            return Some(Err(DropReason::RelayUnknownSession));
        }
        let n = u32::try_from(len).unwrap_or(u32::MAX);
        let l = self.limits;
        if !e.bucket.take(n, now_ms, l.peer_rate, l.peer_burst) {
            return Some(Err(DropReason::RelayRateLimited));
        }
        if !self.total.take(n, now_ms, l.total_rate, l.total_rate) {
            return Some(Err(DropReason::RelayRateLimited));
        }
        Some(Ok(e.route.dst))
    }
}

/// Bytes one route takes in the map (entry plus key, before the map's
/// own overhead of about one control byte and 1/8 spare per slot).
pub const ROUTE_BYTES: usize = std::mem::size_of::<(u32, Entry)>();

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
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
        const { assert!(ROUTE_BYTES <= 96) };
    }
}
