//! I/O backends: one batched datagram interface over several kernel APIs.
//!
//! Every backend moves whole batches of datagrams per call so the driver
//! amortises syscalls and, where the kernel allows, segmentation offload.
//! The driver owns the buffers (caller-owned, reused every iteration) so the
//! steady-state path allocates nothing.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub mod portable;

/// Largest datagram any backend receives into one buffer slot.
pub const MAX_DATAGRAM: usize = 2048;

/// Which backend to run (config `engine.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Pick the fastest available on this platform.
    Auto,
    /// Linux io_uring with a provided buffer ring.
    Uring,
    /// Linux `recvmmsg`/`sendmmsg` with UDP GSO/GRO.
    Mmsg,
    /// mio (epoll / kqueue / IOCP); runs everywhere.
    Portable,
}

impl BackendKind {
    /// Parses the config string (`auto`, `uring`, `mmsg`, `portable`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "uring" => Some(Self::Uring),
            "mmsg" => Some(Self::Mmsg),
            "portable" => Some(Self::Portable),
            _ => None,
        }
    }

    /// The config string of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Uring => "uring",
            Self::Mmsg => "mmsg",
            Self::Portable => "portable",
        }
    }
}

/// A batch of receive slots owned by the driver and reused on every call.
pub struct RecvBatch {
    /// Fixed-size buffers, one datagram each.
    pub bufs: Vec<Box<[u8; MAX_DATAGRAM]>>,
    /// For slot `i < filled`: length of the datagram in `bufs[i]`.
    pub lens: Vec<usize>,
    /// For slot `i < filled`: the sender.
    pub addrs: Vec<SocketAddr>,
    /// Number of slots filled by the last `recv_batch`.
    pub filled: usize,
}

impl RecvBatch {
    /// Allocates `n` slots (once, at start-up).
    pub fn new(n: usize) -> Self {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            bufs: (0..n).map(|_| Box::new([0u8; MAX_DATAGRAM])).collect(),
            lens: vec![0; n],
            addrs: vec![unspecified; n],
            filled: 0,
        }
    }

    /// Iterates over the datagrams filled by the last receive.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.filled).map(move |i| (self.addrs[i], &self.bufs[i][..self.lens[i]]))
    }
}

/// One outgoing datagram of a batch.
#[derive(Debug, Clone, Copy)]
pub struct OutDatagram<'a> {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes to send.
    pub bytes: &'a [u8],
}

/// Wakes a backend that is blocked in [`Backend::wait`] from another thread.
pub trait Wakeup: Send + Sync {
    /// Makes the current or next `wait` return promptly.
    fn wake(&self);
}

/// The batched datagram interface every backend implements.
pub trait Backend: Send {
    /// Short name reported in stats (`uring`, `mmsg`, `portable`).
    fn name(&self) -> &'static str;

    /// The bound local address.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Receives as many datagrams as are ready (up to the batch size) without
    /// blocking; sets `batch.filled` and returns it (0 when none are ready).
    fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize>;

    /// Sends the datagrams in order; returns how many the kernel accepted.
    /// Datagrams that would block are dropped by the caller's accounting,
    /// never retried forever.
    fn send_batch(&mut self, out: &[OutDatagram<'_>]) -> io::Result<usize>;

    /// Blocks until the socket is readable, the waker fires, or `timeout`
    /// passes (`None` = no timeout).
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle that interrupts `wait` from another thread.
    fn waker(&self) -> Arc<dyn Wakeup>;
}
