//! NATs in front of simulated nodes: mapping and filtering behaviour after
//! RFC 4787, with mapping timeouts. One node sits behind each NAT (a home
//! router); the NAT has its own public IP.
//!
//! Mapping: the three cone kinds keep one *endpoint-independent* mapping
//! (the same public port towards every remote); a symmetric NAT makes a new
//! mapping (a new public port) for every remote `ip:port`. A mapping lives
//! while the inside node sends through it at least once per `timeout`
//! (outbound refresh only; inbound traffic does not keep it alive).
//!
//! Filtering of inbound datagrams on a live mapping: full cone accepts any
//! source; address-restricted accepts sources whose IP the inside node sent
//! to within `timeout`; port-restricted the same for `ip:port`; symmetric
//! accepts only the remote the mapping was made for. Everything else is
//! dropped, as an unsolicited datagram is at a real NAT.

use crate::net::FastMap;
use moss_mesh::Time;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The NAT behaviours the simulator models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatKind {
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    AddressRestricted,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestricted,
    /// Address-and-port-dependent mapping and filtering.
    Symmetric,
}

impl NatKind {
    /// Every kind, in a fixed order.
    pub const ALL: [NatKind; 4] = [
        NatKind::FullCone,
        NatKind::AddressRestricted,
        NatKind::PortRestricted,
        NatKind::Symmetric,
    ];

    /// The kind's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::FullCone => "full-cone",
            NatKind::AddressRestricted => "address-restricted",
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
        }
    }

    /// True for the kinds with an endpoint-independent mapping.
    pub fn is_cone(self) -> bool {
        self != NatKind::Symmetric
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NatKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NatKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown NAT kind {s:?} (full-cone, address-restricted, port-restricted, symmetric)")
            })
    }
}

struct Mapping {
    /// The remote a symmetric mapping was made for.
    remote: Option<SocketAddr>,
    last_out: Time,
}

/// Counters of one NAT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStats {
    /// Mappings created (a new public port).
    pub mappings: u64,
    /// Inbound datagrams with no live mapping on their port.
    pub dropped_unmapped: u64,
    /// Inbound datagrams on a live mapping refused by filtering.
    pub dropped_filtered: u64,
    /// Inbound datagrams let through.
    pub passed: u64,
}

impl NatStats {
    /// Adds `o` to these counters.
    pub fn merge(&mut self, o: &NatStats) {
        self.mappings += o.mappings;
        self.dropped_unmapped += o.dropped_unmapped;
        self.dropped_filtered += o.dropped_filtered;
        self.passed += o.passed;
    }
}

/// One NAT with one node behind it.
pub struct Nat {
    /// Its behaviour.
    pub kind: NatKind,
    /// Its public IP.
    pub ip: IpAddr,
    /// Idle time after which a mapping (and a filter permission) lapses.
    pub timeout: Duration,
    /// The node behind it.
    pub inside: usize,
    /// Counters.
    pub stats: NatStats,
    by_port: FastMap<u16, Mapping>,
    /// Port of the endpoint-independent mapping (cone kinds).
    eim: Option<u16>,
    /// Ports of the symmetric mappings by remote.
    by_remote: FastMap<SocketAddr, u16>,
    /// Last outbound time per remote IP (address-restricted filtering).
    sent_ip: FastMap<IpAddr, Time>,
    /// Last outbound time per remote `ip:port` (port-restricted filtering).
    sent_ep: FastMap<SocketAddr, Time>,
    /// Port of the newest mapping: what a rendezvous server would observe.
    newest: Option<u16>,
    next_port: u16,
    sweep_at: Time,
}

/// First port a NAT hands out (ports below are never used).
const PORT_BASE: u16 = 1024;

impl Nat {
    /// A NAT of `kind` at `ip` for node `inside`; `first_port` seeds the
    /// port allocator (sequential from there, as many home routers do).
    pub fn new(
        kind: NatKind,
        ip: IpAddr,
        timeout: Duration,
        inside: usize,
        first_port: u16,
    ) -> Self {
        Self {
            kind,
            ip,
            timeout,
            inside,
            stats: NatStats::default(),
            by_port: FastMap::default(),
            eim: None,
            by_remote: FastMap::default(),
            sent_ip: FastMap::default(),
            sent_ep: FastMap::default(),
            newest: None,
            next_port: first_port.max(PORT_BASE),
            sweep_at: Time::ZERO,
        }
    }

    fn alive(&self, t: Time, now: Time) -> bool {
        now.saturating_sub(t) < self.timeout
    }

    fn allocate(&mut self, remote: Option<SocketAddr>, now: Time) -> u16 {
        loop {
            let p = self.next_port;
            self.next_port = if p == u16::MAX { PORT_BASE } else { p + 1 };
            if let std::collections::hash_map::Entry::Vacant(e) = self.by_port.entry(p) {
                e.insert(Mapping {
                    remote,
                    last_out: now,
                });
                self.stats.mappings += 1;
                self.newest = Some(p);
                return p;
            }
        }
    }

    /// A datagram leaves the inside node for `to`: returns the public
    /// source address it carries, creating or refreshing the mapping.
    pub fn outbound(&mut self, now: Time, to: SocketAddr) -> SocketAddr {
        if now >= self.sweep_at {
            self.sweep(now);
        }
        let existing = match self.kind {
            NatKind::Symmetric => self.by_remote.get(&to).copied(),
            _ => self.eim,
        };
        let live = existing.filter(|p| {
            self.by_port
                .get(p)
                .is_some_and(|m| self.alive(m.last_out, now))
        });
        let port = match live {
            Some(p) => p,
            None => {
                if let Some(old) = existing {
                    self.by_port.remove(&old);
                }
                let remote = (self.kind == NatKind::Symmetric).then_some(to);
                let p = self.allocate(remote, now);
                match self.kind {
                    NatKind::Symmetric => {
                        self.by_remote.insert(to, p);
                    }
                    _ => self.eim = Some(p),
                }
                p
            }
        };
        if let Some(m) = self.by_port.get_mut(&port) {
            m.last_out = now;
        }
        match self.kind {
            NatKind::AddressRestricted => {
                self.sent_ip.insert(to.ip(), now);
            }
            NatKind::PortRestricted => {
                self.sent_ep.insert(to, now);
            }
            _ => {}
        }
        SocketAddr::new(self.ip, port)
    }

    /// A datagram from `from` arrives at public port `port`: true if the
    /// NAT lets it through to the inside node.
    pub fn inbound(&mut self, now: Time, from: SocketAddr, port: u16) -> bool {
        let Some(m) = self.by_port.get(&port) else {
            self.stats.dropped_unmapped += 1;
            return false;
        };
        if !self.alive(m.last_out, now) {
            self.stats.dropped_unmapped += 1;
            return false;
        }
        let ok = match self.kind {
            NatKind::FullCone => true,
            NatKind::AddressRestricted => self
                .sent_ip
                .get(&from.ip())
                .is_some_and(|&t| self.alive(t, now)),
            NatKind::PortRestricted => self.sent_ep.get(&from).is_some_and(|&t| self.alive(t, now)),
            NatKind::Symmetric => m.remote == Some(from),
        };
        if ok {
            self.stats.passed += 1;
        } else {
            self.stats.dropped_filtered += 1;
        }
        ok
    }

    /// The address a rendezvous server would have observed for the inside
    /// node: the newest live mapping (for a cone NAT, the address every
    /// remote sees; for a symmetric NAT, only that one remote's).
    pub fn observed(&self, now: Time) -> Option<SocketAddr> {
        let p = self.newest?;
        let m = self.by_port.get(&p)?;
        self.alive(m.last_out, now)
            .then(|| SocketAddr::new(self.ip, p))
    }

    /// Forgets lapsed mappings and permissions (bounded memory).
    fn sweep(&mut self, now: Time) {
        let timeout = self.timeout;
        let alive = |t: &Time| now.saturating_sub(*t) < timeout;
        self.by_port.retain(|_, m| alive(&m.last_out));
        let ports = &self.by_port;
        self.by_remote.retain(|_, p| ports.contains_key(p));
        if self.eim.is_some_and(|p| !ports.contains_key(&p)) {
            self.eim = None;
        }
        self.sent_ip.retain(|_, t| alive(t));
        self.sent_ep.retain(|_, t| alive(t));
        self.sweep_at = now + timeout;
    }

    /// Live mappings.
    pub fn mappings(&self, now: Time) -> usize {
        self.by_port
            .values()
            .filter(|m| self.alive(m.last_out, now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn a(ip: u8, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(198, 51, 100, ip), port))
    }

    fn nat(kind: NatKind) -> Nat {
        Nat::new(
            kind,
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
            Duration::from_secs(30),
            0,
            5000,
        )
    }

    #[test]
    fn mapping_and_filtering_per_kind() {
        let t = Duration::from_secs(1);
        for kind in NatKind::ALL {
            let mut n = nat(kind);
            assert!(!n.inbound(t, a(1, 9), 5000), "{kind}: nothing mapped yet");
            let p1 = n.outbound(t, a(1, 9)).port();
            let p2 = n.outbound(t, a(2, 9)).port();
            assert_eq!(p1 == p2, kind.is_cone(), "{kind}: mapping reuse");
            // The remote it sent to may answer.
            assert!(n.inbound(t, a(1, 9), p1), "{kind}");
            // Same IP, other port.
            let same_ip = n.inbound(t, a(1, 10), p1);
            assert_eq!(
                same_ip,
                matches!(kind, NatKind::FullCone | NatKind::AddressRestricted),
                "{kind}: same IP, other port"
            );
            // A stranger.
            let stranger = n.inbound(t, a(3, 9), p1);
            assert_eq!(stranger, kind == NatKind::FullCone, "{kind}: stranger");
            // Mappings lapse without outbound traffic, inbound does not
            // refresh them.
            let late = t + Duration::from_secs(31);
            assert!(!n.inbound(late, a(1, 9), p1), "{kind}: lapsed");
            let p3 = n.outbound(late, a(1, 9)).port();
            assert_ne!(p3, p1, "{kind}: a lapsed mapping gets a new port");
        }
    }

    #[test]
    fn outbound_refreshes() {
        let mut n = nat(NatKind::PortRestricted);
        let mut t = Duration::from_secs(1);
        let p = n.outbound(t, a(1, 9)).port();
        for _ in 0..10 {
            t += Duration::from_secs(20);
            assert_eq!(n.outbound(t, a(1, 9)).port(), p);
            assert!(n.inbound(t + Duration::from_secs(29), a(1, 9), p));
        }
        assert_eq!(n.mappings(t), 1);
        assert_eq!("symmetric".parse::<NatKind>(), Ok(NatKind::Symmetric));
        assert!("cone".parse::<NatKind>().is_err());
    }
}
