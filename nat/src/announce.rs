//! Gateway announcements (RFC 6886 §3.2.1, RFC 6887 §14.1): the datagrams a
//! NAT-PMP or PCP gateway multicasts, unsolicited, to 224.0.0.1 port 5350
//! when it starts, loses its mapping state or changes its external address.
//! [`Announcement::accept`] believes one only from the gateway the client
//! maps through; [`Reactions`] spaces the client's reactions out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::{natpmp, pcp};

/// The port clients listen on for announcements.
pub const CLIENT_PORT: u16 = 5350;
/// The group announcements go to (all hosts on the link).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// Shortest gap between two reactions of one client (one gateway event
/// comes as a NAT-PMP notice and a PCP ANNOUNCE together, and miniupnpd
/// sends the NAT-PMP one to two ports).
pub const MIN_GAP: Duration = Duration::from_secs(2);

/// What a gateway announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// NAT-PMP: the gateway's external address (new, or re-announced after
    /// a restart, with the epoch reset).
    PublicAddress {
        /// Seconds since the gateway's mapping table was (re)started.
        epoch: u32,
        /// The gateway's external IPv4 address.
        address: Ipv4Addr,
    },
    /// PCP ANNOUNCE: the server started or lost its state; clients ask for
    /// their mappings again.
    Restarted {
        /// The server's epoch, seconds.
        epoch: u32,
    },
}

/// Why a datagram on the announcement port is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// Sent by someone other than our gateway (RFC 6886: silently discarded).
    #[error("announcement from {0}, not from the gateway")]
    NotFromGateway(IpAddr),
    /// An empty datagram.
    #[error("empty datagram")]
    Empty,
    /// Neither NAT-PMP (version 0) nor PCP (version 2).
    #[error("unknown version {0}")]
    UnknownVersion(u8),
    /// A NAT-PMP datagram that does not decode.
    #[error("NAT-PMP: {0}")]
    NatPmp(natpmp::DecodeError),
    /// A PCP datagram that does not decode.
    #[error("PCP: {0}")]
    Pcp(pcp::DecodeError),
    /// A well-formed response that announces nothing (a mapping reply, a
    /// failure, an ANNOUNCE with an error result).
    #[error("not an announcement")]
    NotAnAnnouncement,
}

impl Announcement {
    /// Decodes a datagram that arrived from `from`, believed only when it
    /// comes from `gateway`. Total: a value or a precise error.
    pub fn accept(from: SocketAddr, gateway: Ipv4Addr, d: &[u8]) -> Result<Self, AnnounceError> {
        if from.ip() != IpAddr::V4(gateway) {
            return Err(AnnounceError::NotFromGateway(from.ip()));
        }
        Self::decode(d)
    }

    /// Decodes an announcement, whoever sent it.
    pub fn decode(d: &[u8]) -> Result<Self, AnnounceError> {
        match d.first() {
            None => Err(AnnounceError::Empty),
            Some(&natpmp::VERSION) => {
                match natpmp::Response::decode(d).map_err(AnnounceError::NatPmp)? {
                    natpmp::Response::ExternalAddress { epoch, address } => {
                        Ok(Announcement::PublicAddress { epoch, address })
                    }
                    _ => Err(AnnounceError::NotAnAnnouncement),
                }
            }
            Some(&pcp::VERSION) => {
                let r = pcp::Response::decode(d).map_err(AnnounceError::Pcp)?;
                if r.opcode == pcp::Opcode::Announce && r.result == 0 {
                    Ok(Announcement::Restarted { epoch: r.epoch })
                } else {
                    Err(AnnounceError::NotAnAnnouncement)
                }
            }
            Some(&v) => Err(AnnounceError::UnknownVersion(v)),
        }
    }

    /// Encodes the announcement as a gateway sends it (for tests and fuzzing).
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Announcement::PublicAddress { epoch, address } => {
                natpmp::Response::ExternalAddress { epoch, address }.encode()
            }
            Announcement::Restarted { epoch } => pcp::Response {
                opcode: pcp::Opcode::Announce,
                result: 0,
                lifetime: 0,
                epoch,
                map: None,
                options: Vec::new(),
            }
            .encode(),
        }
    }

    /// The external address it names, if any (NAT-PMP).
    pub fn address(&self) -> Option<Ipv4Addr> {
        match *self {
            Announcement::PublicAddress { address, .. } => Some(address),
            Announcement::Restarted { .. } => None,
        }
    }
}

/// A rate limit on reactions to announcements: the first at once, the next
/// no sooner than `gap` after the last one.
#[derive(Debug, Clone, Copy)]
pub struct Reactions {
    gap: Duration,
    last: Option<Instant>,
}

impl Reactions {
    /// Reactions at least `gap` apart.
    pub fn new(gap: Duration) -> Self {
        Reactions { gap, last: None }
    }

    /// When the next reaction may happen (now, if `None` or in the past).
    pub fn next_allowed(&self) -> Option<Instant> {
        self.last.map(|t| t + self.gap)
    }

    /// Takes a reaction at `now` if the limit allows it; true if taken.
    pub fn try_react(&mut self, now: Instant) -> bool {
        if self.next_allowed().is_some_and(|t| t > now) {
            return false;
        }
        self.last = Some(now);
        true
    }
}
