//! The portable backend: mio over epoll (Linux), kqueue (macOS/BSD) or IOCP
//! (Windows). One `recvmsg`/`send_to` per datagram, batched at the API.
//!
//! A datagram larger than [`MAX_RECV_DATAGRAM`] is dropped and counted in
//! [`PortableStats::oversized`], never delivered cut: the receive asks the
//! kernel for the truncation flag (`MSG_TRUNC` on Unix, `WSAEMSGSIZE` on
//! Windows, both surfaced by `socket2`'s `recv_from_vectored`).

use super::{is_refusal, Backend, OutDatagram, RecvBatch, SendDrops, Wakeup, MAX_RECV_DATAGRAM};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Counters of the `portable` backend (drop reasons).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortableStats {
    /// Datagrams dropped on receive because they exceed [`MAX_RECV_DATAGRAM`]
    /// (the kernel truncated them).
    pub oversized: u64,
    /// Datagrams dropped on receive because the sender address was not IP.
    pub bad_addr: u64,
}

/// mio-driven UDP socket.
pub struct PortableBackend {
    socket: UdpSocket,
    /// The backend's own poll set; `None` when the caller polls the socket
    /// ([`PortableBackend::unpolled`]).
    poll: Option<Poll>,
    events: Events,
    waker: Arc<dyn Wakeup>,
    stats: PortableStats,
    drops: SendDrops,
}

struct MioWaker(Waker);

impl Wakeup for MioWaker {
    fn wake(&self) {
        // A failed wake only delays the driver until its next timeout.
        let _ = self.0.wake();
    }
}

impl PortableBackend {
    /// Wraps an already bound, non-blocking std socket.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let mut socket = UdpSocket::from_std(socket);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(MioWaker(Waker::new(poll.registry(), WAKER)?));
        Ok(Self {
            socket,
            poll: Some(poll),
            events: Events::with_capacity(8),
            waker,
            stats: PortableStats::default(),
            drops: SendDrops::default(),
        })
    }

    /// Wraps a bound socket whose readiness the caller watches itself (a
    /// shared engine registers every node's socket in its one poll set):
    /// no poll set or waker of its own, so the socket is its only file
    /// descriptor. [`Backend::wait`] returns at once; [`Backend::waker`]
    /// is `waker`.
    pub fn unpolled(socket: std::net::UdpSocket, waker: Arc<dyn Wakeup>) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: UdpSocket::from_std(socket),
            poll: None,
            events: Events::with_capacity(0),
            waker,
            stats: PortableStats::default(),
            drops: SendDrops::default(),
        })
    }

    /// Drop counters since start.
    pub fn stats(&self) -> PortableStats {
        self.stats
    }

    /// One datagram into `buf`: `(length, sender, truncated)`.
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<(usize, Option<SocketAddr>, bool)> {
        let sock = socket2::SockRef::from(&self.socket);
        // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, the bytes
        // are initialised already, and the kernel only writes initialised
        // bytes into them, so `buf` stays valid `[u8]`.
        let uninit: &mut [MaybeUninit<u8>] =
            unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        let mut bufs = [socket2::MaybeUninitSlice::new(uninit)];
        let (len, flags, addr) = sock.recv_from_vectored(&mut bufs)?;
        Ok((len, addr.as_socket(), flags.is_truncated()))
    }
}

impl Backend for PortableBackend {
    fn name(&self) -> &'static str {
        "portable"
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut n = 0;
        while n < batch.bufs.len() {
            match self.recv_one(&mut batch.bufs[n][..]) {
                Ok((len, Some(addr), false)) if len <= MAX_RECV_DATAGRAM => {
                    batch.lens[n] = len;
                    batch.addrs[n] = addr;
                    n += 1;
                }
                Ok((_, None, _)) => self.stats.bad_addr += 1,
                // Cut by the kernel: drop, never deliver a prefix as if it
                // were the datagram.
                Ok(_) => self.stats.oversized += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Windows reports a truncated datagram as WSAEMSGSIZE.
                #[cfg(windows)]
                Err(e) if e.raw_os_error() == Some(10040) => self.stats.oversized += 1,
                // ICMP errors surface as ConnectionRefused/Reset on some
                // platforms; they say nothing about the socket itself.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    batch.filled = n;
                    return if n > 0 { Ok(n) } else { Err(e) };
                }
            }
        }
        batch.filled = n;
        Ok(n)
    }

    fn send_batch(&mut self, out: &[OutDatagram<'_>]) -> io::Result<usize> {
        let mut sent = 0;
        for d in out {
            match self.socket.send_to(d.bytes, d.to) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    // Once more; a second interruption drops it, counted.
                    if let Err(e) = self.socket.send_to(d.bytes, d.to) {
                        self.drops.count(&e, 1);
                    }
                    sent += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || !is_refusal(&e) => {
                    // The socket is full (or failing): the rest of the
                    // batch does not go out.
                    self.drops.count(&e, out.len() - sent);
                    return if sent == 0 && e.kind() != io::ErrorKind::WouldBlock {
                        Err(e)
                    } else {
                        Ok(sent)
                    };
                }
                // Unreachable destinations and similar per-datagram failures
                // drop that datagram only.
                Err(e) => {
                    self.drops.count(&e, 1);
                    sent += 1
                }
            }
        }
        Ok(sent)
    }

    fn send_drops(&self) -> SendDrops {
        self.drops
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let Some(poll) = &mut self.poll else {
            return Ok(());
        };
        match poll.poll(&mut self.events, timeout) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn waker(&self) -> Arc<dyn Wakeup> {
        self.waker.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A datagram above [`MAX_RECV_DATAGRAM`] is counted and dropped; the one
    /// after it arrives whole.
    #[test]
    fn oversized_is_counted_not_truncated() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = rx.local_addr().expect("addr");
        let mut b = PortableBackend::new(rx).expect("backend");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        tx.send_to(&vec![7u8; MAX_RECV_DATAGRAM + 1000], to)
            .expect("send");
        tx.send_to(&[9u8; 10], to).expect("send");
        let mut batch = RecvBatch::new(4);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.is_empty() && Instant::now() < deadline {
            b.wait(Some(Duration::from_millis(50))).expect("wait");
            b.recv_batch(&mut batch).expect("recv");
            got.extend(batch.iter().map(|(_, d)| d.to_vec()));
        }
        assert_eq!(got, vec![vec![9u8; 10]]);
        assert_eq!(b.stats().oversized, 1);
    }
}
