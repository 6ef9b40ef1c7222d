//! Server-reflexive ICE candidates (config `webrtc.stun`): one STUN
//! Binding transaction from each ICE socket to each STUN server of its
//! address family, with the sans-IO client of `moss-nat`. What a server
//! saw of a socket is what peers behind other NATs can reach it on; the
//! endpoint offers it as a `srflx` candidate in every later link.

use moss_nat::stun::{ChangeRequest, ClientConfig, ClientError, StunClient};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Short timers: gathering runs when the node starts, and a link made
/// before it ends offers host candidates only. 200 ms doubling, 4 sends,
/// then 800 ms: a server that never answers is given up after 3.8 s.
const STUN: ClientConfig = ClientConfig {
    rto: Duration::from_millis(200),
    max_sends: 4,
    last_wait: 4,
    max_in_flight: 16,
};

/// Resolves each `host:port` (validated by the config); an entry that
/// does not resolve is logged and skipped.
pub(crate) fn resolve(servers: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for s in servers {
        match s.to_socket_addrs() {
            Ok(addrs) => out.extend(addrs),
            Err(e) => {
                tracing::warn!(server = %s, error = %e, "webrtc: STUN server does not resolve")
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A reflexive address learned, or a server given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gathered {
    /// `addr` is what a STUN server saw of socket `socket`.
    Mapped { socket: usize, addr: SocketAddr },
    /// A server gave no usable answer for socket `socket`.
    Failed { socket: usize },
}

/// The STUN clients of the ICE sockets (one each) and the servers.
pub(crate) struct Gather {
    clients: Vec<StunClient>,
    servers: Vec<SocketAddr>,
}

impl Gather {
    /// Starts one transaction per (socket, server of its family); `locals`
    /// are the sockets' bound addresses.
    pub fn start(
        now: Instant,
        locals: &[SocketAddr],
        servers: Vec<SocketAddr>,
    ) -> Result<Self, ClientError> {
        let mut rng = rand_core::OsRng;
        let mut clients = Vec::with_capacity(locals.len());
        for local in locals {
            let mut c = StunClient::new(STUN)?;
            for s in servers.iter().filter(|s| s.is_ipv4() == local.is_ipv4()) {
                // At most `max_in_flight` servers per socket are asked.
                if c.start_binding(now, *s, ChangeRequest::default(), &mut rng)
                    .is_err()
                {
                    break;
                }
            }
            clients.push(c);
        }
        Ok(Self { clients, servers })
    }

    /// True while a transaction is in flight.
    pub fn busy(&self) -> bool {
        self.clients.iter().any(|c| c.in_flight() > 0)
    }

    /// The next request due: `(socket, destination, bytes)`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(usize, SocketAddr, Vec<u8>)> {
        self.clients
            .iter_mut()
            .enumerate()
            .find_map(|(i, c)| c.poll_transmit(now).map(|t| (i, t.destination, t.payload)))
    }

    /// When [`Gather::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clients
            .iter()
            .filter_map(StunClient::poll_timeout)
            .min()
    }

    /// Runs the retransmission timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clients.iter_mut().for_each(|c| c.handle_timeout(now));
    }

    /// A datagram on socket `socket` from `from`: true if it was a STUN
    /// server's answer to one of ours (consumed), false if it is ICE's.
    pub fn handle(&mut self, now: Instant, socket: usize, from: SocketAddr, bytes: &[u8]) -> bool {
        if !self.servers.contains(&from) {
            return false;
        }
        match self.clients.get_mut(socket) {
            Some(c) if c.in_flight() > 0 => c.handle_datagram(now, from, bytes).is_ok(),
            _ => false,
        }
    }

    /// The next result.
    pub fn poll(&mut self) -> Option<Gathered> {
        self.clients.iter_mut().enumerate().find_map(|(socket, c)| {
            c.poll_outcome().map(|o| match o.result {
                Ok(r) => Gathered::Mapped {
                    socket,
                    addr: r.mapped,
                },
                Err(e) => {
                    tracing::debug!(server = %o.server, error = ?e, "webrtc: STUN binding failed");
                    Gathered::Failed { socket }
                }
            })
        })
    }
}
