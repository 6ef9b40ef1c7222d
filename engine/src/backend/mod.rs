//! I/O backends: one batched datagram interface over several kernel APIs.
//!
//! Every backend moves whole batches of datagrams per call so the driver
//! amortises syscalls and, where the kernel allows, segmentation offload.
//! The driver owns the buffers (caller-owned, reused every iteration) so the
//! steady-state path allocates nothing.

use moss_mesh::ConfigError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod forward;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub mod mmsg;
pub mod portable;
#[cfg(target_os = "linux")]
pub mod uring;

pub(crate) use forward::forward_slots;
use forward::EachDatagram;
#[cfg(target_os = "linux")]
pub(crate) use forward::{forward_messages, send_each, Buffers, Message, Passed};
pub use forward::{Forward, Received, FORWARD_CHUNK};

/// Largest datagram any backend receives into one buffer slot.
pub const MAX_RECV_DATAGRAM: usize = 2048;

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

    /// Parses `engine.backend` of a node config (an empty string is
    /// `auto`); the error names the field `engine.backend`.
    pub fn from_config(engine: &moss_mesh::config::EngineConfig) -> Result<Self, ConfigError> {
        if engine.backend.is_empty() {
            return Ok(Self::Auto);
        }
        Self::parse(&engine.backend).ok_or_else(|| ConfigError::Invalid {
            field: "engine.backend",
            reason: format!(
                "unknown backend `{}` (auto, uring, mmsg, portable)",
                engine.backend
            ),
        })
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
    pub bufs: Vec<Box<[u8; MAX_RECV_DATAGRAM]>>,
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
            bufs: (0..n).map(|_| Box::new([0u8; MAX_RECV_DATAGRAM])).collect(),
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

/// Datagrams a backend's sends lost, by the kernel's reason (cumulative).
///
/// Every datagram handed to [`Backend::send_batch`] that did not go out is
/// counted in exactly one field, in the call that gave up on it: nothing is
/// dropped silently. A caller that resends the unsent tail of a batch has
/// it counted once per refused attempt (the engine never resends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendDrops {
    /// The socket's send buffer was full (`EAGAIN`): the datagrams the
    /// kernel would not take, including the rest of a `sendmmsg` that
    /// stopped part-way.
    pub would_block: u64,
    /// The kernel had no buffer or memory for it (`ENOBUFS`, `ENOMEM`).
    pub no_buffer: u64,
    /// Refused for its destination or size (unreachable, `EACCES`,
    /// `EMSGSIZE`, a family the socket cannot reach, ...).
    pub refused: u64,
    /// Any other send error, including a failed io_uring submission or
    /// completion.
    pub failed: u64,
}

impl SendDrops {
    /// All datagrams lost on send.
    pub fn total(&self) -> u64 {
        self.would_block + self.no_buffer + self.refused + self.failed
    }

    /// Adds `other` field by field.
    pub fn merge(&mut self, other: &SendDrops) {
        self.would_block += other.would_block;
        self.no_buffer += other.no_buffer;
        self.refused += other.refused;
        self.failed += other.failed;
    }

    /// Counts `n` datagrams lost to the send error `e` under its cause.
    pub fn count(&mut self, e: &io::Error, n: usize) {
        let n = n as u64;
        #[cfg(unix)]
        let no_buffer = matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::ENOMEM));
        #[cfg(not(unix))]
        let no_buffer = e.kind() == io::ErrorKind::OutOfMemory;
        if e.kind() == io::ErrorKind::WouldBlock {
            self.would_block += n;
        } else if no_buffer {
            self.no_buffer += n;
        } else if is_refusal(e) {
            self.refused += n;
        } else {
            self.failed += n;
        }
    }
}

/// Whether a send error concerns this datagram or destination only.
pub(crate) fn is_refusal(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    if linux::drops_datagram(e) {
        return true;
    }
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
    )
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

    /// Like [`Backend::recv_batch`], but hands each datagram to `f` (sender,
    /// mutable bytes for in-place decryption) instead of leaving it in
    /// `batch`. Backends that receive into buffers of their own (`uring`'s
    /// ring, `mmsg`'s GRO scratch) skip the copy into the slots; the others
    /// use `batch` as the receive area (this default). At most as many
    /// datagrams as `batch` has slots; returns how many `f` saw. The
    /// contents of `batch` are unspecified afterwards.
    fn recv_with(
        &mut self,
        batch: &mut RecvBatch,
        f: &mut dyn FnMut(SocketAddr, &mut [u8]),
    ) -> io::Result<usize> {
        let n = self.recv_batch(batch)?;
        for i in 0..n {
            let len = batch.lens[i];
            f(batch.addrs[i], &mut batch.bufs[i][..len]);
        }
        Ok(n)
    }

    /// Like [`Backend::recv_with`], but `f` may return a destination: the
    /// datagram (as `f` left it) is then sent there unchanged, straight from
    /// the buffer it was received into, batched with the other forwarded
    /// datagrams of the call (runs to one destination coalesced with GSO
    /// where the backend does that). No copy, no allocation: the relay data
    /// plane. Send losses are counted in [`Backend::send_drops`]. This
    /// default receives into `batch` and sends from its slots. How many
    /// datagrams one call may hand over: [`Backend::recv_forward_batch`].
    fn recv_forward(
        &mut self,
        batch: &mut RecvBatch,
        f: &mut dyn FnMut(SocketAddr, &mut [u8]) -> Option<SocketAddr>,
    ) -> io::Result<Received> {
        self.recv_forward_batch(batch, &mut EachDatagram(f))
    }

    /// [`Backend::recv_forward`] with the datagrams handed to `f` a chunk
    /// at a time ([`Forward`]: all of a chunk first, for batch work, then
    /// each), forwarded the same way. This default receives into `batch`
    /// and sends from its slots.
    ///
    /// Backends with GRO take up to as many *messages* as `batch` has
    /// slots and hand `f` every datagram of them (a super-datagram holds up
    /// to 64), so one call may hand over more datagrams than `batch` has
    /// slots; the datagrams of a super-datagram that all go to one
    /// destination then leave as one GSO message (GRO passthrough).
    fn recv_forward_batch(
        &mut self,
        batch: &mut RecvBatch,
        f: &mut dyn Forward,
    ) -> io::Result<Received> {
        let n = self.recv_batch(batch)?;
        forward_slots(self, batch, n, f)
    }

    /// Sends the datagrams in order; returns how many from the front were
    /// handled (sent, or dropped for their own destination and counted).
    /// The rest, `out[n..]`, did not go out because the socket's buffer is
    /// full or the kernel failed the send; those are counted too, in
    /// [`Backend::send_drops`] by cause. `Err` only when nothing was handled
    /// (every datagram counted). Never retries forever.
    fn send_batch(&mut self, out: &[OutDatagram<'_>]) -> io::Result<usize>;

    /// Datagrams lost on send since start, by cause.
    fn send_drops(&self) -> SendDrops;

    /// Blocks until the socket is readable, the waker fires, or `timeout`
    /// passes (`None` = no timeout).
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle that interrupts `wait` from another thread.
    fn waker(&self) -> Arc<dyn Wakeup>;
}

/// Why a backend could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend does not exist on this platform.
    #[error("backend `{backend}` is not supported on this platform")]
    Unsupported {
        /// The backend asked for.
        backend: &'static str,
    },
    /// The backend exists but the kernel or policy refuses it here.
    #[error("backend `{backend}` is unavailable: {reason}")]
    Unavailable {
        /// The backend asked for.
        backend: &'static str,
        /// What refused it (sysctl, EPERM, missing opcode, ...).
        reason: String,
    },
    /// The socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The kernel's error.
        source: io::Error,
    },
    /// Setting the backend up failed with an I/O error.
    #[error("backend `{backend}` failed to start: {source}")]
    Io {
        /// The backend being started.
        backend: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
}

/// Socket buffer size [`open`] asks for (the kernel caps it at
/// `net.core.rmem_max` / `wmem_max`): bursts of batched datagrams overflow
/// the usual 208 KiB default.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Binds `addr` and starts the backend `kind`. `Auto` tries `uring`, then
/// `mmsg`, then `portable`, logging why each one skipped fell back; an
/// explicit kind fails with the reason when it is unavailable. On Linux the
/// socket buffers are raised towards [`SOCKET_BUFFER`].
pub fn open(kind: BackendKind, addr: SocketAddr) -> Result<Box<dyn Backend>, BackendError> {
    let socket =
        std::net::UdpSocket::bind(addr).map_err(|source| BackendError::Bind { addr, source })?;
    #[cfg(target_os = "linux")]
    linux::grow_buffers(std::os::fd::AsRawFd::as_raw_fd(&socket), SOCKET_BUFFER);
    open_with_socket(kind, socket)
}

/// Like [`open`] on an already bound socket (e.g. one with `SO_REUSEPORT`
/// or tuned buffer sizes).
pub fn open_with_socket(
    kind: BackendKind,
    socket: std::net::UdpSocket,
) -> Result<Box<dyn Backend>, BackendError> {
    let io_err = |backend| move |source| BackendError::Io { backend, source };
    match kind {
        BackendKind::Portable => Ok(Box::new(
            portable::PortableBackend::new(socket).map_err(io_err("portable"))?,
        )),
        #[cfg(target_os = "linux")]
        BackendKind::Mmsg => Ok(Box::new(
            mmsg::MmsgBackend::new(socket, mmsg::Offload::default()).map_err(io_err("mmsg"))?,
        )),
        #[cfg(target_os = "linux")]
        BackendKind::Uring => Ok(Box::new(uring::UringBackend::new(
            socket,
            uring::UringOptions::default(),
        )?)),
        #[cfg(not(target_os = "linux"))]
        BackendKind::Mmsg | BackendKind::Uring => Err(BackendError::Unsupported {
            backend: kind.as_str(),
        }),
        BackendKind::Auto => open_auto(socket),
    }
}

#[cfg(target_os = "linux")]
fn open_auto(socket: std::net::UdpSocket) -> Result<Box<dyn Backend>, BackendError> {
    let spare = socket.try_clone().map_err(|source| BackendError::Io {
        backend: "auto",
        source,
    })?;
    match uring::UringBackend::new(spare, uring::UringOptions::default()) {
        Ok(b) => return Ok(Box::new(b)),
        Err(e) => tracing::info!(reason = %e, "backend auto: uring unavailable, trying mmsg"),
    }
    // A failed attempt may have switched GRO on; only mmsg/uring split it.
    linux::disable_gro(std::os::fd::AsRawFd::as_raw_fd(&socket));
    let spare = socket.try_clone().map_err(|source| BackendError::Io {
        backend: "auto",
        source,
    })?;
    match mmsg::MmsgBackend::new(spare, mmsg::Offload::default()) {
        Ok(b) => return Ok(Box::new(b)),
        Err(e) => tracing::info!(reason = %e, "backend auto: mmsg unavailable, using portable"),
    }
    linux::disable_gro(std::os::fd::AsRawFd::as_raw_fd(&socket));
    open_with_socket(BackendKind::Portable, socket)
}

#[cfg(not(target_os = "linux"))]
fn open_auto(socket: std::net::UdpSocket) -> Result<Box<dyn Backend>, BackendError> {
    open_with_socket(BackendKind::Portable, socket)
}

/// Binds a UDP socket to `addr` with `SO_REUSEPORT` set (so shards can bind
/// one socket each to the same port) and its buffers raised towards
/// [`SOCKET_BUFFER`]. Linux only: elsewhere the kernel's reuse semantics
/// differ, and the engine runs one shard.
#[cfg(target_os = "linux")]
pub fn bind_reuseport(addr: SocketAddr) -> Result<std::net::UdpSocket, BackendError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind_err = |source| BackendError::Bind { addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_err)?;
    s.set_reuse_port(true).map_err(bind_err)?;
    s.bind(&addr.into()).map_err(bind_err)?;
    let socket: std::net::UdpSocket = s.into();
    linux::grow_buffers(std::os::fd::AsRawFd::as_raw_fd(&socket), SOCKET_BUFFER);
    Ok(socket)
}

/// Reports that a test cannot run its real component on this machine:
/// prints `SKIP: reason`, and panics when `CI=true` (CI must run it).
#[cfg(test)]
pub(crate) fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "SKIP refused under CI=true: {reason}"
    );
    eprintln!("SKIP: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_name_the_field() {
        let cfg = moss_mesh::Config::from_json(r#"{"engine":{"backend":"dpdk"}}"#).unwrap();
        let e = BackendKind::from_config(&cfg.engine).unwrap_err();
        assert_eq!(e.field(), "engine.backend");
        let d = moss_mesh::Config::from_json("{}").unwrap();
        assert_eq!(BackendKind::from_config(&d.engine), Ok(BackendKind::Auto));
    }
}
