//! The portable backend: mio over epoll (Linux), kqueue (macOS/BSD) or IOCP
//! (Windows). One `recv_from`/`send_to` per datagram, batched at the API.

use super::{Backend, OutDatagram, RecvBatch, Wakeup};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// mio-driven UDP socket.
pub struct PortableBackend {
    socket: UdpSocket,
    poll: Poll,
    events: Events,
    waker: Arc<MioWaker>,
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
            poll,
            events: Events::with_capacity(8),
            waker,
        })
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
            match self.socket.recv_from(&mut batch.bufs[n][..]) {
                Ok((len, addr)) => {
                    batch.lens[n] = len;
                    batch.addrs[n] = addr;
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Unreachable destinations and similar per-datagram failures
                // drop that datagram only.
                Err(_) => sent += 1,
            }
        }
        Ok(sent)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn waker(&self) -> Arc<dyn Wakeup> {
        self.waker.clone()
    }
}
