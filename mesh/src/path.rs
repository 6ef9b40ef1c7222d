//! Where a peer's datagrams come from and go to: a UDP address, a relay
//! through another peer's session, a TCP connection the engine carries, or
//! a channel the host owns (a WebRTC DataChannel). Sessions, roaming, [`crate::Transmit`]
//! and the simulator speak it; only [`Path::Udp`] appears on the wire (the
//! observed address of the handshake), so UDP wire bytes are unchanged.

use moss_crypto::PeerId;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A peer path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// A UDP address: the socket the driver owns sends and receives.
    Udp(SocketAddr),
    /// Datagrams travel through peer `via` (a supernode relay): handshakes
    /// inside our session with it, data straight to its address, which
    /// forwards them by index (`crate::relay`).
    Relay {
        /// The relaying peer.
        via: PeerId,
        /// The relay session id the supernode assigned.
        session: u64,
    },
    /// A host-owned channel with this id (a WebRTC DataChannel): the host
    /// moves datagrams between it and the node.
    Channel(u64),
    /// A TCP connection of the engine's TCP carrier: datagrams travel as
    /// length-masked records (docs/PROTOCOL.md, "TCP carrier"). `id` names
    /// the connection (a new connection is a new path); `addr` is its
    /// remote address.
    Tcp {
        /// The carrier's connection id.
        id: u64,
        /// The remote address of the connection.
        addr: SocketAddr,
    },
}

impl Path {
    /// The UDP address, for a [`Path::Udp`].
    pub fn udp(&self) -> Option<SocketAddr> {
        match *self {
            Self::Udp(a) => Some(a),
            _ => None,
        }
    }

    /// The address the GossipSub router keys this peer's IP-colocation
    /// score and peer-exchange record on. Paths without an address get a
    /// unique-local IPv6 address derived from the path (port 0, which no
    /// node dials), so two channel peers never count as one IP.
    pub(crate) fn router_addr(&self) -> SocketAddr {
        let tail = match *self {
            // A TCP peer has a real address: colocation counts its IP.
            Self::Udp(a) | Self::Tcp { addr: a, .. } => return a,
            Self::Relay { via, session } => {
                u64::from_le_bytes([
                    via.0[0], via.0[1], via.0[2], via.0[3], via.0[4], via.0[5], via.0[6], via.0[7],
                ]) ^ session
            }
            Self::Channel(id) => id,
        };
        let kind: u16 = if matches!(self, Self::Relay { .. }) {
            1
        } else {
            2
        };
        let ip = Ipv6Addr::new(
            0xfd6d,
            0x6f73,
            0x7300,
            kind,
            (tail >> 48) as u16,
            (tail >> 32) as u16,
            (tail >> 16) as u16,
            tail as u16,
        );
        SocketAddr::new(IpAddr::V6(ip), 0)
    }
}

impl From<SocketAddr> for Path {
    fn from(a: SocketAddr) -> Self {
        Self::Udp(a)
    }
}

impl PartialEq<SocketAddr> for Path {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.udp() == Some(*other)
    }
}

impl fmt::Display for Path {
    /// A UDP path prints as its address (`1.2.3.4:5`), the others as
    /// `relay:<peer id>/<session>`, `channel:<id>` and `tcp:<address>#<id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Udp(a) => a.fmt(f),
            Self::Relay { via, session } => write!(f, "relay:{}/{session}", via.to_hex()),
            Self::Channel(id) => write!(f, "channel:{id}"),
            Self::Tcp { id, addr } => write!(f, "tcp:{addr}#{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_paths_compare_and_print_as_their_address() {
        let a: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let p = Path::from(a);
        assert_eq!(p, a);
        assert_eq!(p.to_string(), "1.2.3.4:5");
        assert_eq!(p.router_addr(), a);
        assert_ne!(Path::Channel(1), a);
        assert_eq!(Path::Channel(7).to_string(), "channel:7");
        let t = Path::Tcp { id: 3, addr: a };
        assert_ne!(t, a);
        assert_eq!(t.udp(), None);
        assert_eq!(t.router_addr(), a);
        assert_eq!(t.to_string(), "tcp:1.2.3.4:5#3");
    }

    #[test]
    fn non_udp_paths_get_distinct_router_addresses() {
        let c1 = Path::Channel(1).router_addr();
        let c2 = Path::Channel(2).router_addr();
        let r = Path::Relay {
            via: PeerId([1; 32]),
            session: 3,
        }
        .router_addr();
        assert_ne!(c1.ip(), c2.ip());
        assert_ne!(c1.ip(), r.ip());
        assert_eq!(c1.port(), 0);
    }
}
