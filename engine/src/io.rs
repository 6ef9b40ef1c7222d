//! How the engine thread's datagrams move: one backend it receives from
//! and sends on ([`Transport::Direct`]), or shard threads that own the
//! sockets and the session keys, with a socket of the shared port for the
//! core's own handshake datagrams ([`Transport::Sharded`]).

use crate::backend::{Backend, OutDatagram, SendDrops, Wakeup};
use crate::driver::BATCH;
use crate::shard::Shards;
use moss_mesh::Transmit;
use std::net::{SocketAddr, UdpSocket};

/// Placeholder address of an unused send view.
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// The engine thread's transport.
pub(crate) enum Transport {
    /// The engine thread owns the backend: the node opens and seals.
    Direct(Box<dyn Backend>),
    /// Shard threads own the sockets and open and seal; the core sends its
    /// handshake datagrams on `socket` (a non-blocking clone of shard 0's,
    /// so peers see one address).
    Sharded {
        /// The shard threads.
        shards: Shards,
        /// The core's send socket.
        socket: UdpSocket,
    },
}

/// Nothing to wake: a sharded core sleeps on its channels, not a socket.
pub(crate) struct NoWake;

impl Wakeup for NoWake {
    fn wake(&self) {}
}

impl Transport {
    /// Sends `out` (at most [`BATCH`]); returns how many went out. Every
    /// other one is counted in [`Transport::send_drops`] by cause, so the
    /// caller's `out.len() - sent` is the same count.
    pub fn send(&mut self, out: &[Transmit]) -> usize {
        match self {
            Self::Direct(backend) => {
                // Views into the node's buffers, on the stack: no per-batch
                // allocation.
                let mut views = [OutDatagram {
                    to: UNSPECIFIED,
                    bytes: &[],
                }; BATCH];
                let mut n = 0;
                for t in out {
                    // A direct engine only makes UDP paths.
                    if let Some(to) = t.to.udp() {
                        views[n] = OutDatagram {
                            to,
                            bytes: &t.bytes,
                        };
                        n += 1;
                    }
                }
                let before = backend.send_drops().total();
                if let Err(e) = backend.send_batch(&views[..n]) {
                    tracing::trace!(error = %e, "send failed");
                }
                let lost = backend.send_drops().total() - before;
                n - (lost as usize).min(n)
            }
            Self::Sharded { shards, socket } => {
                let mut sent = 0;
                for t in out {
                    let Some(to) = t.to.udp() else {
                        // Sharded engines run no TCP carrier.
                        shards.core_drops.refused += 1;
                        continue;
                    };
                    match socket.send_to(&t.bytes, to) {
                        Ok(_) => sent += 1,
                        Err(e) => {
                            tracing::trace!(%to, error = %e, "handshake send failed");
                            shards.core_drops.count(&e, 1);
                        }
                    }
                }
                sent
            }
        }
    }

    /// Datagrams lost on send by cause: the backend's, or the core
    /// socket's plus every shard's.
    pub fn send_drops(&self) -> SendDrops {
        match self {
            Self::Direct(backend) => backend.send_drops(),
            Self::Sharded { shards, .. } => shards.send_drops(),
        }
    }

    /// The shard threads, when sharded.
    pub fn shards(&self) -> Option<&Shards> {
        match self {
            Self::Direct(_) => None,
            Self::Sharded { shards, .. } => Some(shards),
        }
    }
}
